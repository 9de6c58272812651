# optiq-convert against stock mlx-lm and transformers (tests/interop/check_convert.py): stories260K
# (llama2.c + tok512.bin) and SmolLM2-135M-Instruct (GGUF) converted at 4.5 bpw must load with
# mlx_lm.utils.load, give the logits optiq's runtime gives on the same directory, carry override keys
# that are real module paths, hit the bpw target within 0.05, round-trip through optiq's loader, and
# ship a tokenizer.json that transformers' AutoTokenizer reads to the ids optiq's tokenizer gives.
# Included from tests/interop/CMakeLists.txt after find_package(Python3). Needs: pip install
# "mlx-lm[cpu]" transformers; SmolLM2 from scripts/fetch_models.sh (skipped alone when absent).
add_executable(optiq_convert_dump ${CMAKE_CURRENT_LIST_DIR}/convert_logits_dump.cpp)
target_link_libraries(optiq_convert_dump PRIVATE optiq::optiq optiq_dev_flags)

# optiq-convert comes from examples/, which is added after tests/: test the option, not the target.
if(Python3_Interpreter_FOUND AND OPTIQ_BUILD_EXAMPLES)
    add_test(NAME interop.convert
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_convert.py
                --convert $<TARGET_FILE:optiq-convert>
                --dump $<TARGET_FILE:optiq_convert_dump>
                --models ${PROJECT_SOURCE_DIR}/../shared/models
                --data ${PROJECT_SOURCE_DIR}/../shared/data)
    set_tests_properties(interop.convert PROPERTIES SKIP_RETURN_CODE 77 LABELS interop TIMEOUT 600)
endif()

# Quality of converted models (KL to the reference and perplexity, llama.cpp's protocol) for
# docs/results.md; a tool, not a test.
add_executable(optiq_convert_eval ${CMAKE_CURRENT_LIST_DIR}/convert_eval.cpp)
target_link_libraries(optiq_convert_eval PRIVATE optiq::optiq optiq_dev_flags)
