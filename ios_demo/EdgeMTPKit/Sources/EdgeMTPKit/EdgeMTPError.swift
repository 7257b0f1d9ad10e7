import CEdgeMTP

/// A failure of the C core (an `emtp_error`), or of the Swift layer around it.
public struct EdgeMTPError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Equatable, Sendable {
        case usage, io, bundle, litert, memory, state, cancelled, other
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    init(code: Int32, error: inout emtp_error) {
        let text = withUnsafeBytes(of: &error.message) { raw -> String in
            let bytes = raw.bindMemory(to: UInt8.self)
            let end = bytes.firstIndex(of: 0) ?? bytes.count
            return String(decoding: bytes[..<end], as: UTF8.self)
        }
        switch code {
        case Int32(EMTP_EUSAGE): kind = .usage
        case Int32(EMTP_EIO): kind = .io
        case Int32(EMTP_EBUNDLE): kind = .bundle
        case Int32(EMTP_ELITERT): kind = .litert
        case Int32(EMTP_ENOMEM): kind = .memory
        case Int32(EMTP_ESTATE): kind = .state
        case Int32(EMTP_ECANCELLED): kind = .cancelled
        default: kind = .other
        }
        message = text.isEmpty ? "error \(code)" : text
    }

    public var description: String { message }
}
