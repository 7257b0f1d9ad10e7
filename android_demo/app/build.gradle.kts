plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "dev.edgemtp.demo"
    compileSdk = 35
    ndkVersion = "27.2.12479018"

    defaultConfig {
        applicationId = "dev.edgemtp.demo"
        minSdk = 29 // PowerManager.getCurrentThermalStatus, ATrace_beginSection
        targetSdk = 35
        versionCode = 1
        versionName = "0.1"
        ndk {
            abiFilters += listOf("arm64-v8a")
        }
        externalNativeBuild {
            cmake {
                arguments += listOf("-DANDROID_STL=none")
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.22.1"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            signingConfig = signingConfigs.getByName("debug") // a demo: installable without a keystore
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    packaging {
        jniLibs {
            useLegacyPackaging = true // extract the .so files so dlopen("libLiteRt.so") finds them
            pickFirsts += listOf("**/libLiteRt.so")
        }
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    implementation(project(":core"))
    // LiteRT's prebuilt Android runtime (libLiteRt.so for arm64-v8a) from Google Maven. Instead, a
    // libLiteRt.so copied to src/main/jniLibs/arm64-v8a/ works too (see android_demo/README.md).
    implementation("com.google.ai.edge.litert:litert:${providers.gradleProperty("litertVersion").get()}")
}
