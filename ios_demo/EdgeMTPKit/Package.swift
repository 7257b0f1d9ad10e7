// swift-tools-version:5.9
// EdgeMTPKit: the edge-mtp speculative decoding core (C11, ../../native) for Swift.
//
// CEdgeMTP compiles the shared C core sources in place: Sources/CEdgeMTP/core is a symlink to
// native/src and include/edge_mtp.h one to native/include/edge_mtp.h (SwiftPM only takes sources
// below the package directory and follows symlinks there; git stores the links). cli.c (the CLI's
// main) is excluded. The core loads LiteRT with dlopen at run time, so nothing links against it here:
// the app ships libLiteRt.dylib and passes its path (see ../README.md).
import PackageDescription

let package = Package(
    name: "EdgeMTPKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "EdgeMTPKit", targets: ["EdgeMTPKit"]),
    ],
    targets: [
        .target(
            name: "CEdgeMTP",
            path: "Sources/CEdgeMTP",
            exclude: ["core/cli.c"],
            sources: ["core/bundle.c", "core/json.c", "core/loop.c", "core/sampling.c", "core/trace.c",
                      "core/litert.c", "core/draftlen.c", "observe.c"],
            publicHeadersPath: "include",
            cSettings: [.unsafeFlags(["-ffp-contract=off"])],  // draftlen.c: no fused multiply-add
            linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux])),
                             .linkedLibrary("m", .when(platforms: [.linux]))]
        ),
        .target(name: "EdgeMTPKit", dependencies: ["CEdgeMTP"], path: "Sources/EdgeMTPKit"),
        .testTarget(name: "EdgeMTPKitTests", dependencies: ["EdgeMTPKit"], path: "Tests/EdgeMTPKitTests"),
    ],
    cLanguageStandard: .c11
)
