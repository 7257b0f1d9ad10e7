// Linux stand-in (type-check only): what DemoModel uses from UIKit, and two Apple-only Foundation members
// (ProcessInfo.thermalState, URL security-scoped access).
import Foundation

@MainActor
public final class UIApplication {
    public static let shared = UIApplication()
    public var isIdleTimerDisabled = false
}

extension ProcessInfo {
    public enum ThermalState: Int, Sendable { case nominal, fair, serious, critical }
    public var thermalState: ThermalState { .nominal }
}

extension URL {  // Apple Foundation only
    public func startAccessingSecurityScopedResource() -> Bool { false }
    public func stopAccessingSecurityScopedResource() {}
}
