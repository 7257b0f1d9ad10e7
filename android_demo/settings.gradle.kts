// Android demo of edge-mtp: `:core` is the pure-Kotlin layer (JNI declarations, loop driver, trace I/O,
// settings, benchmark mode) that is also compiled and unit-tested on a desktop JVM by
// scripts/jvm_test.sh; `:app` is the one-screen Activity and the NDK build of the C core.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "edge-mtp-demo"
include(":core", ":app")
