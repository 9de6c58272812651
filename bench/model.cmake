# optiq_bench_model: prefill / decode tok/s of model::Transformer, f32 vs MLX affine 4- and 8-bit
# weights (bench/model_bench.cpp). Included from bench/CMakeLists.txt after find_package(benchmark):
# include(model.cmake). stories260K comes from the shared models folder (OPTIQ_BENCH_STORIES in the
# environment overrides it); SmolLM2-135M-Instruct from ${OPTIQ_CACHE:-~/.cache/optiq} at run time.
add_executable(optiq_bench_model ${CMAKE_CURRENT_LIST_DIR}/model_bench.cpp)
target_link_libraries(optiq_bench_model PRIVATE optiq::optiq optiq_dev_flags benchmark::benchmark)
target_compile_definitions(optiq_bench_model
    PRIVATE OPTIQ_BENCH_STORIES="${PROJECT_SOURCE_DIR}/../shared/models/stories260K/stories260K.bin")
if(OPTIQ_BUILD_TESTS)
    # Smoke run: the stories260K rows once each; no timing is asserted.
    add_test(NAME bench.model_smoke
             COMMAND optiq_bench_model --benchmark_min_time=0.001 --benchmark_filter=^stories260K/)
    set_tests_properties(bench.model_smoke PROPERTIES LABELS bench TIMEOUT 300)
endif()
