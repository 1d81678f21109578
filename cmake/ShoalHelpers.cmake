# shoal_use_pch(TARGET): compile TARGET with the one precompiled header,
# <ATen/ATen.h>, built once by shoal_common. Parsing ATen costs a few seconds
# per translation unit, and a PCH per target would cost ~20 s per target.
# The PCH is ATen, not torch/torch.h: measured on the 2-core machine, a test
# that needs only ATen compiles in 22 s with it against 31 s with a
# torch/torch.h PCH (GCC loads and checks the whole 570 MB header each
# time), and one that needs no LibTorch in 17 s against 33 s. The eleven
# files that include torch/torch.h pay ~10 s more each.
function(shoal_use_pch target)
  if(SHOAL_USE_PCH)
    target_precompile_headers(${target} REUSE_FROM shoal_common)
  endif()
endfunction()

# shoal_add_library(NAME SOURCES ... [HEADERS ...] [PRIVATE_HEADERS ...]
#                   DEPS ... [OWN_PCH])
# One library per room, installed and exported. HEADERS are the few headers of
# the room that the public API (include/shoal/*.h) includes, directly or
# through each other: only those are installed, under
# include/shoal/internal/<room>/, and they are not a promise (docs/api.md).
# PRIVATE_HEADERS stay in the source tree. The package test compiles every
# public header alone against the installed copy, so a header that should be
# in HEADERS fails there. OWN_PCH builds the shared ATen PCH (shoal_common
# only); every other library reuses it.
function(shoal_add_library name)
  cmake_parse_arguments(ARG "OWN_PCH" "" "SOURCES;HEADERS;PRIVATE_HEADERS;DEPS" ${ARGN})
  add_library(${name} ${ARG_SOURCES} ${ARG_HEADERS} ${ARG_PRIVATE_HEADERS})
  add_library(Shoal::${name} ALIAS ${name})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/shoal/internal>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(SHOAL_USE_PCH AND ARG_OWN_PCH)
    target_precompile_headers(${name} PRIVATE <ATen/ATen.h>)
  elseif(NOT ARG_OWN_PCH)
    shoal_use_pch(${name})
  endif()
  install(TARGETS ${name} EXPORT ShoalTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  file(RELATIVE_PATH room ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  foreach(header ${ARG_HEADERS})
    get_filename_component(dir ${header} DIRECTORY)
    install(FILES ${header}
      DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/shoal/internal/${room}/${dir})
  endforeach()
endfunction()
