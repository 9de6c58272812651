# optiq-convert: KL-sensitivity mixed-precision conversion to an MLX model directory. The end-to-end
# checks against stock mlx-lm live in tests/interop/convert.cmake; here only a quick self-check on
# stories260K (uniform and optiq methods, refusal to overwrite), which needs no Python package.
optiq_example(optiq-convert)

if(OPTIQ_BUILD_TESTS)
    find_package(Python3 REQUIRED COMPONENTS Interpreter)
    add_test(NAME examples.convert
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/optiq-convert/check_convert_cli.py
                $<TARGET_FILE:optiq-convert> ${PROJECT_SOURCE_DIR}/../shared/models/stories260K)
    set_tests_properties(examples.convert PROPERTIES LABELS "examples;model" TIMEOUT 300)
endif()
