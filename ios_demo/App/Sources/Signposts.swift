import EdgeMTPKit
import MetricKit
import os

/// The app contract's intervals (profiling/README.md): OSSignposter intervals "generate", "prefill",
/// "draft", "verify" in subsystem dev.edgemtp.demo, category mtp_on / mtp_off, and MetricKit signposts
/// around "generate" (MetricKit's signpostCumulativeCPUTime per token). Not thread-safe: the benchmark
/// runner calls it from its one worker thread.
final class Signposts: Instrumentation {
    private let signposter: OSSignposter
    private let metricLog: OSLog
    private var open: [Interval: [OSSignpostIntervalState]] = [:]

    init(category: String) {
        signposter = OSSignposter(subsystem: "dev.edgemtp.demo", category: category)
        metricLog = MXMetricManager.makeLogHandle(category: category)
    }

    func begin(_ interval: Interval, message: String) {
        let id = signposter.makeSignpostID()
        let state: OSSignpostIntervalState
        switch interval {
        case .generate:
            state = signposter.beginInterval("generate", id: id, "\(message, privacy: .public)")
            mxSignpost(.begin, log: metricLog, name: "generate")
        case .prefill:
            state = signposter.beginInterval("prefill", id: id, "\(message, privacy: .public)")
        case .draft:
            state = signposter.beginInterval("draft", id: id, "\(message, privacy: .public)")
        case .verify:
            state = signposter.beginInterval("verify", id: id, "\(message, privacy: .public)")
        }
        open[interval, default: []].append(state)
    }

    func end(_ interval: Interval, message: String) {
        guard let state = open[interval]?.popLast() else { return }
        switch interval {
        case .generate:
            mxSignpost(.end, log: metricLog, name: "generate")
            signposter.endInterval("generate", state, "\(message, privacy: .public)")
        case .prefill:
            signposter.endInterval("prefill", state, "\(message, privacy: .public)")
        case .draft:
            signposter.endInterval("draft", state, "\(message, privacy: .public)")
        case .verify:
            signposter.endInterval("verify", state, "\(message, privacy: .public)")
        }
    }
}
