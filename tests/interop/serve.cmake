# optiq-serve driven by the official Python clients (PyPI openai, anthropic) and raw HTTP
# (tests/interop/check_serve.py): stories260K for the bulk, SmolLM2-135M-Instruct (fetched by
# scripts/fetch_models.sh; skipped when absent) through its chat template.
# Included from tests/interop/CMakeLists.txt, which is read before examples/: the test is
# registered once the whole project is read, and only when optiq-serve is built (cpp-httplib found).
if(DEFINED ENV{OPTIQ_CACHE})
    set(optiq_serve_model_cache $ENV{OPTIQ_CACHE})
else()
    set(optiq_serve_model_cache $ENV{HOME}/.cache/optiq)
endif()

function(optiq_register_serve_interop python script models smollm)
    if(NOT TARGET optiq-serve OR NOT TARGET optiq-generate)
        message(STATUS "optiq: optiq-serve or optiq-generate is not built; interop.serve is not registered")
        return()
    endif()
    add_test(NAME interop.serve
        COMMAND ${python} ${script}
                --server $<TARGET_FILE:optiq-serve> --generate $<TARGET_FILE:optiq-generate>
                --models ${models} --smollm ${smollm})
    set_tests_properties(interop.serve PROPERTIES SKIP_RETURN_CODE 77 LABELS "interop;model" TIMEOUT 300)
endfunction()

cmake_language(EVAL CODE
    "cmake_language(DEFER DIRECTORY [[${PROJECT_SOURCE_DIR}]] CALL optiq_register_serve_interop [[${Python3_EXECUTABLE}]]
        [[${CMAKE_CURRENT_LIST_DIR}/check_serve.py]] [[${PROJECT_SOURCE_DIR}/../shared/models]]
        [[${optiq_serve_model_cache}/SmolLM2-135M-Instruct.Q4_1.gguf]])")
