"""System libraries (Debian -dev packages) wrapped as Bazel repositories.

Nothing here downloads: every repository points at files that tools/setup.sh installs.
"""

def xraysink_system_dependencies():
    for name in ["absl", "boost", "httplib", "rapidjson", "gtest", "benchmark", "spdlog"]:
        native.new_local_repository(
            name = name,
            path = "/usr/include",
            build_file = "//third_party:%s.BUILD" % name,
        )
