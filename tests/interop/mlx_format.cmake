# optiq::io::write_mlx_model vs stock mlx-lm (tests/interop/check_mlx_format.py): stories260K written
# as a mixed 4/8-bit MLX model directory must load with mlx_lm.utils.load_model, its QuantizedLinear /
# QuantizedEmbedding tensors must equal what optiq wrote, and its logits must match a NumPy forward
# pass over optiq's dequantized weights. Included from tests/interop/CMakeLists.txt after
# find_package(Python3). Needs: pip install "mlx-lm[cpu]".
add_executable(optiq_mlx_format_write ${CMAKE_CURRENT_LIST_DIR}/mlx_format_write.cpp)
target_link_libraries(optiq_mlx_format_write PRIVATE optiq::optiq optiq_dev_flags)

if(Python3_Interpreter_FOUND)
    add_test(NAME interop.mlx_format
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/check_mlx_format.py
                --writer $<TARGET_FILE:optiq_mlx_format_write>
                --stories ${PROJECT_SOURCE_DIR}/../shared/models/stories260K/stories260K.bin)
    set_tests_properties(interop.mlx_format PROPERTIES SKIP_RETURN_CODE 77 LABELS interop TIMEOUT 300)
endif()
