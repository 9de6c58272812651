# model::Transformer vs independent NumPy forward passes (tests/interop/check_model_forward.py):
# llama2.c's run.c on stories260K (greedy ids + logits), HF Llama on SmolLM2's GGUF as MLX loads it,
# HF Qwen2 (q/k/v bias, untied head) on Qwen2.5-Coder's Q4_K_M GGUF as `gguf` dequantizes it (each
# GGUF check skipped when its file is absent; scripts/fetch_models.sh [--qwen]).
# Included from tests/interop/CMakeLists.txt (inside its if(Python3_Interpreter_FOUND)).
add_executable(optiq_model_forward_dump ${CMAKE_CURRENT_LIST_DIR}/model_forward_dump.cpp)
target_link_libraries(optiq_model_forward_dump PRIVATE optiq::optiq optiq_dev_flags)

if(Python3_Interpreter_FOUND)
    if(DEFINED ENV{OPTIQ_CACHE})
        set(optiq_model_cache $ENV{OPTIQ_CACHE})
    else()
        set(optiq_model_cache $ENV{HOME}/.cache/optiq)
    endif()
    add_test(NAME interop.model_forward
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_model_forward.py
                --dump $<TARGET_FILE:optiq_model_forward_dump>
                --stories ${PROJECT_SOURCE_DIR}/../shared/models/stories260K/stories260K.bin
                --tokenizer ${PROJECT_SOURCE_DIR}/../shared/models/stories260K/tok512.bin
                --gguf ${optiq_model_cache}/SmolLM2-135M-Instruct.Q4_1.gguf
                --qwen2 ${optiq_model_cache}/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf)
    set_tests_properties(interop.model_forward PROPERTIES SKIP_RETURN_CODE 77 LABELS "interop;model;slow" TIMEOUT 600)
endif()
