# shoal_use_torch_pch(TARGET): compile TARGET with the one precompiled
# LibTorch header, built once by shoal_common. torch/torch.h costs ~25 s per
# translation unit on a 2-core machine; a PCH per target would cost that once
# per target, this costs it once.
function(shoal_use_torch_pch target)
  if(SHOAL_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM shoal_common)
  endif()
endfunction()

# shoal_add_library(NAME SOURCES ... HEADERS ... DEPS ... [OWN_PCH])
# One library per room: installed, exported, headers installed under
# include/shoal/<room>/ keeping the source tree's layout. OWN_PCH builds the
# shared LibTorch PCH (shoal_common only); every other library reuses it.
function(shoal_add_library name)
  cmake_parse_arguments(ARG "OWN_PCH" "" "SOURCES;HEADERS;DEPS" ${ARGN})
  add_library(${name} ${ARG_SOURCES} ${ARG_HEADERS})
  add_library(Shoal::${name} ALIAS ${name})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/shoal>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(SHOAL_USE_PCH AND ARG_OWN_PCH)
    target_precompile_headers(${name} PRIVATE <torch/torch.h>)
  elseif(NOT ARG_OWN_PCH)
    shoal_use_torch_pch(${name})
  endif()
  install(TARGETS ${name} EXPORT ShoalTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  file(RELATIVE_PATH room ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  foreach(header ${ARG_HEADERS})
    get_filename_component(dir ${header} DIRECTORY)
    install(FILES ${header}
      DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/shoal/${room}/${dir})
  endforeach()
endfunction()
