import CEdgeMTP

public struct TopLogit: Equatable, Sendable {
    public let id: Int32
    public let value: Float
}

/// One round of the loop, as in a step-trace round line (docs/trace.md) (round 0 is the prefill).
public struct Round: Equatable, Sendable {
    public let index: Int
    public let position: Int
    public let drafts: [Int32]
    public let target: [Int32]
    public let accepted: Int
    public let emitted: [Int32]
    public let topLogits: [TopLogit]
    public let draftMilliseconds: Double?
    public let verifyMilliseconds: Double
    public let graphMilliseconds: Double
}

/// The result of `SpeculativeSession.generate`: owns the C core's `emtp_generation`, so the trace is
/// written by the core's own writer (byte-compatible with the C CLI's and Python's, timings aside).
public final class Generation: @unchecked Sendable {
    public let settings: GenerationSettings
    public let modelID: String
    /// Wall time of the whole call (prefill included), seconds.
    public let wallSeconds: Double
    public let prompt: [Int32]
    public let tokens: [Int32]
    public let rounds: [Round]
    /// "eos" | "max_new_tokens" | "context"
    public let stop: String
    public let drafted: Int
    public let accepted: Int
    public let acceptancePerSlot: [Double]
    public let meanEmittedPerRound: Double

    private let raw: UnsafeMutablePointer<emtp_generation>
    private var config: emtp_config

    init(owning raw: UnsafeMutablePointer<emtp_generation>, config: emtp_config, settings: GenerationSettings,
         modelID: String, wallSeconds: Double) {
        self.raw = raw
        self.config = config
        self.settings = settings
        self.modelID = modelID
        self.wallSeconds = wallSeconds
        let g = raw.pointee
        prompt = Array(UnsafeBufferPointer(start: g.prompt, count: Int(g.n_prompt)))
        tokens = Array(UnsafeBufferPointer(start: g.tokens, count: Int(g.n_tokens)))
        stop = g.stop.map { String(cString: $0) } ?? ""
        rounds = (0..<Int(g.n_rounds)).map { i in
            let r = g.rounds[i]
            let n = Int(r.n_top)
            let ids = withUnsafeBytes(of: r.top_ids) { Array($0.bindMemory(to: Int32.self).prefix(n)) }
            let values = withUnsafeBytes(of: r.top_values) { Array($0.bindMemory(to: Float.self).prefix(n)) }
            return Round(index: Int(r.index), position: Int(r.position),
                         drafts: Array(UnsafeBufferPointer(start: r.drafts, count: Int(r.n_drafts))),
                         target: Array(UnsafeBufferPointer(start: r.target, count: Int(r.n_target))),
                         accepted: Int(r.accepted),
                         emitted: Array(UnsafeBufferPointer(start: r.emitted, count: Int(r.n_emitted))),
                         topLogits: zip(ids, values).map { TopLogit(id: $0, value: $1) },
                         draftMilliseconds: r.has_draft_ms != 0 ? r.ms_draft : nil,
                         verifyMilliseconds: r.ms_verify, graphMilliseconds: r.ms_graph)
        }
        let k = Int(config.draft_len)
        var d: Int32 = 0, a: Int32 = 0, mean = 0.0
        var slots = [Double](repeating: 0, count: k + 1)
        emtp_summary(raw, config.draft_len, &d, &a, &slots, &mean)
        drafted = Int(d)
        accepted = Int(a)
        acceptancePerSlot = Array(slots.prefix(k))
        meanEmittedPerRound = mean
    }

    deinit {
        emtp_generation_free(raw)
        raw.deallocate()
    }

    /// Decode rate: generated tokens after the first per second of the rounds after the prefill, from the
    /// loop's own round timings (draft + verify), so it excludes time spent in callbacks.
    public var tokensPerSecond: Double {
        let ms = rounds.dropFirst().reduce(0.0) { $0 + ($1.draftMilliseconds ?? 0) + $1.verifyMilliseconds }
        return ms > 0 && tokens.count > 1 ? Double(tokens.count - 1) / (ms / 1000) : 0
    }

    /// Writes the step trace (docs/trace.md) atomically.
    public func writeTrace(to path: String, implementation: String = "swift") throws {
        var err = emtp_error()
        let rc = path.withCString { p in
            implementation.withCString { impl in
                modelID.withCString { model in
                    emtp_write_trace_file(p, raw, &config, impl, model, &err)
                }
            }
        }
        if rc != 0 { throw EdgeMTPError(code: rc, error: &err) }
    }
}
