# Tokenizers and chat templates vs HF `tokenizers`, a Python re-implementation of llama2.c's encode,
# and jinja2 (tests/interop/check_tokenizer.py). Included from tests/interop/CMakeLists.txt after
# find_package(Python3).
add_executable(optiq_tokenizer_dump ${CMAKE_CURRENT_LIST_DIR}/tokenizer_dump.cpp)
target_link_libraries(optiq_tokenizer_dump PRIVATE optiq::optiq optiq_dev_flags)

if(Python3_Interpreter_FOUND)
    add_test(NAME interop.tokenizer
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_tokenizer.py
                --dump $<TARGET_FILE:optiq_tokenizer_dump>
                --wikitext ${PROJECT_SOURCE_DIR}/../shared/data/wikitext-2-raw-test.txt
                --stories ${PROJECT_SOURCE_DIR}/../shared/models/stories260K/tok512.bin)
    set_tests_properties(interop.tokenizer PROPERTIES SKIP_RETURN_CODE 77 LABELS interop TIMEOUT 300)
endif()
