# optiq_bench_kv: decode attention per token through KVCache (bench/kv_bench.cpp).
# Included from bench/CMakeLists.txt after find_package(benchmark): include(kv.cmake)
add_executable(optiq_bench_kv ${CMAKE_CURRENT_LIST_DIR}/kv_bench.cpp)
target_link_libraries(optiq_bench_kv PRIVATE optiq::optiq optiq_dev_flags benchmark::benchmark)
if(OPTIQ_BUILD_TESTS)
    # Smoke run: the stream benchmark and the 1k-context decodes once each; no timing is asserted.
    add_test(NAME bench.kv_smoke COMMAND optiq_bench_kv --benchmark_min_time=0.001 --benchmark_filter=StreamRead|/1024$)
    set_tests_properties(bench.kv_smoke PROPERTIES LABELS bench TIMEOUT 300)
endif()
