// Linux stand-in (type-check only): the MetricKit calls of the app contract.
import Foundation
import os

public protocol MXMetricManagerSubscriber: NSObjectProtocol {
    func didReceive(_ payloads: [MXMetricPayload])
}

public final class MXMetricPayload {
    public var timeStampEnd: Date { Date() }
    public func jsonRepresentation() -> Data { Data() }
}

public final class MXMetricManager {
    public static let shared = MXMetricManager()
    public func add(_ subscriber: MXMetricManagerSubscriber) {}
    public class func makeLogHandle(category: String) -> OSLog { OSLog(subsystem: "", category: category) }
}

public func mxSignpost(_ type: OSSignpostType, dso: UnsafeRawPointer = #dsohandle, log: OSLog, name: StaticString,
                       signpostID: OSSignpostID = .exclusive) {}
