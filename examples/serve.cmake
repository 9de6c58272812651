# optiq-serve: OpenAI- and Anthropic-compatible HTTP server (include/optiq/serve/ + cpp-httplib).
# cpp-httplib comes from the system: its CMake package when it ships one (upstream installs
# httplibConfig.cmake), else pkg-config (Debian's libcpp-httplib-dev ships only cpp-httplib.pc and
# a compiled libcpp-httplib.so, whose header must see the same CPPHTTPLIB_* defines the .pc lists).
# Without it the server is skipped with a message; nothing else depends on it.
find_package(httplib CONFIG QUIET)
if(TARGET httplib::httplib)
    set(optiq_httplib httplib::httplib)
else()
    find_package(PkgConfig QUIET)
    if(PKG_CONFIG_FOUND)
        pkg_check_modules(optiq_cpp_httplib QUIET IMPORTED_TARGET cpp-httplib)
    endif()
    if(TARGET PkgConfig::optiq_cpp_httplib)
        set(optiq_httplib PkgConfig::optiq_cpp_httplib)
    endif()
endif()

if(NOT optiq_httplib)
    message(WARNING "optiq: cpp-httplib not found (apt-get install libcpp-httplib-dev); optiq-serve is not built")
    return()
endif()

find_package(Threads REQUIRED)
optiq_example(optiq-serve)
target_link_libraries(optiq-serve PRIVATE ${optiq_httplib} Threads::Threads)
