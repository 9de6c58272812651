# Cross-compiling optiq's tests for 64-bit Arm Linux (the AArch64 code paths Apple Silicon and Arm
# servers take: arch::neon, the portable scalar kernels), run through qemu-user by ctest:
#   apt-get install crossbuild-essential-arm64 qemu-user
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DOPTIQ_GTEST_SOURCE_DIR=/usr/src/googletest -DOPTIQ_BUILD_EXAMPLES=OFF -DOPTIQ_BUILD_BENCH=OFF
#   cmake --build build-arm64 && ctest --test-dir build-arm64
# (GoogleTest is built from Debian's source package with the cross compiler; header-only
# dependencies such as nlohmann-json are found on the host.)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
