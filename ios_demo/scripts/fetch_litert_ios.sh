#!/usr/bin/env bash
# On a Mac: download LiteRT's prebuilt iOS runtime (libLiteRt.dylib for ios_arm64 and ios_sim_arm64, the
# CompiledModel C API the C core dlopens) and wrap it as ios_demo/App/Vendor/LiteRt.xcframework, which
# project.yml embeds into the app. Needs curl and Xcode's command line tools (xcodebuild, install_name_tool).
#
#   ios_demo/scripts/fetch_litert_ios.sh [VERSION]     # default 2.3.1 (listed with ios_arm64 binaries on
#                                                      # https://ai.google.dev/edge/litert/next/cpp_sdk)
set -euo pipefail
version="${1:-2.3.1}"
here="$(cd "$(dirname "$0")" && pwd)"
vendor="$here/../App/Vendor"
base="https://storage.googleapis.com/litert/binaries/$version"
command -v xcodebuild >/dev/null || { echo "fetch_litert_ios.sh: needs Xcode (xcodebuild); run it on a Mac" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
args=()
for platform in ios_arm64 ios_sim_arm64; do
    mkdir -p "$tmp/$platform"
    echo "downloading $base/$platform/libLiteRt.dylib" >&2
    curl -fL --retry 3 -o "$tmp/$platform/libLiteRt.dylib" "$base/$platform/libLiteRt.dylib"
    install_name_tool -id @rpath/libLiteRt.dylib "$tmp/$platform/libLiteRt.dylib"
    args+=(-library "$tmp/$platform/libLiteRt.dylib")
done
rm -rf "$vendor/LiteRt.xcframework"
mkdir -p "$vendor"
xcodebuild -create-xcframework "${args[@]}" -output "$vendor/LiteRt.xcframework"
echo "wrote $vendor/LiteRt.xcframework (LiteRT $version)" >&2
