import Foundation
import MetricKit

/// Writes every MetricKit payload to Documents/metrickit/<timeStampEnd>.json, where
/// profiling/ios/pull_metrickit.sh copies them from.
final class MetricKitSaver: NSObject, MXMetricManagerSubscriber, @unchecked Sendable {  // no mutable state
    static let shared = MetricKitSaver()

    func start() {
        MXMetricManager.shared.add(self)
    }

    func didReceive(_ payloads: [MXMetricPayload]) {
        let dir = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("metrickit", isDirectory: true)
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for payload in payloads {
            let stamp = Int(payload.timeStampEnd.timeIntervalSince1970)
            try? payload.jsonRepresentation().write(to: dir.appendingPathComponent("\(stamp).json"), options: .atomic)
        }
    }
}
