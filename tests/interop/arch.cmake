# model::Transformer vs mlx-lm's own model classes (mlx_lm.models.qwen3 / qwen2 / llama) on tiny
# random-weight HF-layout models written by tests/interop/check_arch_forward.py: Qwen3 q/k norm,
# Qwen2 q/k/v bias, Llama 3 rope scaling; chunked prefill and decode steps. Seconds, no download.
# Included from tests/interop/CMakeLists.txt (inside its if(Python3_Interpreter_FOUND)).
add_executable(optiq_arch_forward_dump ${CMAKE_CURRENT_LIST_DIR}/arch_forward_dump.cpp)
target_link_libraries(optiq_arch_forward_dump PRIVATE optiq::optiq optiq_dev_flags)

if(Python3_Interpreter_FOUND)
    add_test(NAME interop.arch_forward
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_arch_forward.py
                --dump $<TARGET_FILE:optiq_arch_forward_dump>)
    set_tests_properties(interop.arch_forward PROPERTIES SKIP_RETURN_CODE 77 LABELS "interop;model" TIMEOUT 300)
endif()
