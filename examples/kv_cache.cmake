# optiq-kv-cache (per-layer KV sensitivity -> kv_config.json) and optiq-eval (perplexity and KL
# against a reference), with their end-to-end checks on stories260K.
optiq_example(optiq-kv-cache)
optiq_example(optiq-eval)
# The only WikiText in ../shared/data is the test split, kept for evaluation: calibration defaults
# to another text.
target_compile_definitions(optiq-kv-cache PRIVATE
    OPTIQ_DEFAULT_CALIBRATION="${PROJECT_SOURCE_DIR}/../shared/data/tinyshakespeare.txt")

if(OPTIQ_BUILD_TESTS)
    find_package(Python3 REQUIRED COMPONENTS Interpreter)
    add_test(NAME examples.kv_cache
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/optiq-kv-cache/check_kv_cache.py
                $<TARGET_FILE:optiq-kv-cache> $<TARGET_FILE:optiq-generate> ${PROJECT_SOURCE_DIR}/../shared/models)
    set_tests_properties(examples.kv_cache PROPERTIES LABELS "examples;model" TIMEOUT 300)
    add_test(NAME examples.eval
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/optiq-eval/check_eval.py
                $<TARGET_FILE:optiq-eval> $<TARGET_FILE:optiq-generate> ${PROJECT_SOURCE_DIR}/../shared/models)
    set_tests_properties(examples.eval PROPERTIES LABELS "examples;model" TIMEOUT 300)
endif()
