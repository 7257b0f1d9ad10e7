// Settings of one generation: the same knobs as `edge-mtp run` and the native CLI.

/// Seeded speculative sampling (temperature > 0). `topK` 0 and `topP` 1 switch those filters off.
public struct Sampling: Equatable, Sendable {
    public var temperature: Double
    public var topK: Int
    public var topP: Double
    public var seed: UInt64

    public init(temperature: Double, topK: Int = 0, topP: Double = 1.0, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }
}

/// The drafter's view of the target K/V cache (`--kv-view`): `hf` is what the Python reference and the
/// exported graphs use by default.
public enum KVView: String, Equatable, Sendable, CaseIterable {
    case hf
    case clean
}

public struct GenerationSettings: Equatable, Sendable {
    /// Drafts per round (K); 0 = plain decoding (MTP off).
    public var draftLength: Int
    public var maxNewTokens: Int
    /// nil = greedy.
    public var sampling: Sampling?
    public var kvView: KVView

    public init(draftLength: Int, maxNewTokens: Int = 64, sampling: Sampling? = nil, kvView: KVView = .hf) {
        self.draftLength = draftLength
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.kvView = kvView
    }

    /// MTP off: the same settings with K = 0.
    public var withoutDrafts: GenerationSettings {
        var s = self
        s.draftLength = 0
        return s
    }

    /// nil when valid, else the reason (the same limits as the native CLI).
    public var problem: String? {
        if draftLength < 0 || draftLength > 64 { return "draft length must be in 0...64, got \(draftLength)" }
        if maxNewTokens < 1 { return "max new tokens must be at least 1, got \(maxNewTokens)" }
        if let s = sampling {
            if !(s.temperature > 0) { return "temperature must be > 0 for sampling (use greedy instead)" }
            if s.topK < 0 { return "top-k must be >= 0" }
            if !(s.topP > 0 && s.topP <= 1) { return "top-p must be in (0, 1]" }
        }
        return nil
    }
}

/// Parses token ids written as "1,2,3" or "1 2 3" (the demo has no tokenizer: see ios_demo/README.md).
public func parseTokenIDs(_ text: String) -> [Int32]? {
    let parts = text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" || $0 == "\t" })
    var ids: [Int32] = []
    for p in parts {
        guard let v = Int32(p) else { return nil }
        ids.append(v)
    }
    return ids.isEmpty ? nil : ids
}
