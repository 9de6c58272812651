# Installs optiq into a scratch prefix, then builds and runs the consumer project twice:
# through find_package(optiq) and through add_subdirectory.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
    execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
    endif()
endfunction()
set(common -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX})
# Cross builds (cmake/aarch64-linux-gnu.cmake): the same toolchain, and the consumer runs under its emulator.
if(TOOLCHAIN)
    list(APPEND common -DCMAKE_TOOLCHAIN_FILE=${TOOLCHAIN})
endif()
string(REPLACE "|" ";" emulator "${EMULATOR}")
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/optiq-build ${common}
    -DOPTIQ_BUILD_TESTS=OFF -DOPTIQ_BUILD_BENCH=OFF -DOPTIQ_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/optiq-build)
foreach(via package subdirectory)
    run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/consumer-${via} ${common}
        -DOPTIQ_VIA=${via} -DOPTIQ_SOURCE_DIR=${SOURCE_DIR} -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
    run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer-${via})
    run(${emulator} ${WORK_DIR}/consumer-${via}/consumer)
    message(STATUS "consumer via ${via}: ok")
endforeach()
