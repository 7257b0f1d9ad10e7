// Edge MTP demo (iOS): one screen to run Gemma 4 + MTP drafter speculative decoding from a .litertlm
// bundle through EdgeMTPKit (the shared C core), and the benchmark mode profiling/ios/record.sh drives.
// Builds only on a Mac with Xcode (see ../../README.md); syntax-checked on Linux.
import SwiftUI

@main
struct EdgeMTPDemoApp: App {
    @StateObject private var model = DemoModel()

    init() {
        MetricKitSaver.shared.start()
    }

    var body: some Scene {
        WindowGroup {
            ContentView(model: model)
                .task { await model.startBenchmarkIfRequested() }
        }
    }
}
