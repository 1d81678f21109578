# Finds Shoal's dependencies, all from Debian 12 packages. Used by the build
# and, installed, by ShoalConfig.cmake.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
find_dependency(ZLIB)
find_dependency(OpenSSL 3)
find_dependency(absl CONFIG)
find_dependency(Protobuf)
find_dependency(gRPC CONFIG)
find_dependency(Torch CONFIG)
find_dependency(CLI11 CONFIG)
find_dependency(nlohmann_json CONFIG)
find_dependency(spdlog CONFIG)
