# shoal_add_library(NAME SOURCES ... HEADERS ... DEPS ... [PCH header])
# One library per room: installed, exported, headers installed under
# include/shoal/<room>/ keeping the source tree's layout.
function(shoal_add_library name)
  cmake_parse_arguments(ARG "" "PCH" "SOURCES;HEADERS;DEPS" ${ARGN})
  add_library(${name} ${ARG_SOURCES} ${ARG_HEADERS})
  add_library(Shoal::${name} ALIAS ${name})
  target_include_directories(${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/shoal>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  target_compile_options(${name} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(SHOAL_USE_PCH AND ARG_PCH)
    target_precompile_headers(${name} PRIVATE ${ARG_PCH})
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
