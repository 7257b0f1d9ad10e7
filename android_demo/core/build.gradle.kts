// Pure Kotlin/JVM: no android.* imports, so the same sources build here and in scripts/jvm_test.sh
// (kotlinc + JUnit 5 on a desktop JVM, against native/jni built with gcc).
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(kotlin("test"))
    testImplementation("org.junit.jupiter:junit-jupiter:5.10.3")
    testRuntimeOnly("org.junit.platform:junit-platform-launcher")
}

tasks.test {
    useJUnitPlatform()
    // The model tests need the desktop JNI library and a bundle; without them they are skipped.
    System.getenv("EDGE_MTP_JNI")?.let { systemProperty("edge_mtp.jni", it) }
    environment("EDGE_MTP_TEST_BUNDLE", System.getenv("EDGE_MTP_TEST_BUNDLE") ?: "")
}
