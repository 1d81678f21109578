# Installs the build into a temporary prefix and builds
# examples/edge_inference against it with find_package(Shoal): the package a
# downstream project sees must be complete.
# Run as: cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -P package_test.cmake
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/edge_inference -B ${WORK_DIR}/build
    -G Ninja -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/edge_inference --describe 2nn)
if(NOT last_output MATCHES "2nn: 199210 parameters")
  message(FATAL_ERROR "unexpected output: ${last_output}")
endif()
message(STATUS "find_package(Shoal) consumer built and ran: ${last_output}")
file(REMOVE_RECURSE ${WORK_DIR})
