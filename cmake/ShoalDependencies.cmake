# Finds Shoal's dependencies, all from Debian 12 packages. Used by the build
# and, installed, by ShoalConfig.cmake.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(ZLIB)
find_dependency(PNG)   # image-folder reader (libpng-dev)
find_dependency(JPEG)  # image-folder reader (libjpeg62-turbo-dev)
find_dependency(OpenSSL 3)
find_dependency(absl CONFIG)
find_dependency(Protobuf)
find_dependency(gRPC CONFIG)
find_dependency(Torch CONFIG)
find_dependency(CLI11 CONFIG)
find_dependency(nlohmann_json CONFIG)
find_dependency(spdlog CONFIG)
# Telemetry: Prometheus's C++ client for the metrics and their text format
# (prometheus-cpp-dev), cpp-httplib for the HTTP endpoint (libcpp-httplib-dev;
# its pkg-config file carries the OpenSSL/zlib/brotli defines the library
# was built with, which every includer must share).
find_dependency(prometheus-cpp CONFIG)
find_dependency(PkgConfig)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
