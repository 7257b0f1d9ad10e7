import CEdgeMTP
import Dispatch
import Foundation

/// A phase of the speculative loop, as reported to `SpeculativeSession.phaseHandler` (the app wraps
/// them in os_signpost intervals named "prefill", "draft", "verify").
public enum Phase: String, Sendable, CaseIterable {
    case prefill, draft, verify
}

/// The loaded bundle: what the C core read from its manifest.
public struct ModelInfo: Equatable, Sendable {
    public let modelID: String
    public let backend: String
    public let vocabSize: Int
    public let hiddenSize: Int
    public let context: Int
    public let slidingWindow: Int
    public let defaultDraftLength: Int
    public let hasDrafter: Bool
    public let stopIDs: [Int32]
}

/// Acceptance rate of each draft slot 1...K, counted as the trace summary's `accepted_per_position`:
/// slot k is offered in every round that drafted more than k tokens and kept when more than k were accepted.
public struct SlotAcceptance: Equatable, Sendable {
    public private(set) var offered: [Int]
    public private(set) var kept: [Int]

    public init(draftLength: Int) {
        offered = Array(repeating: 0, count: max(draftLength, 0))
        kept = offered
    }

    public mutating func add(drafted: Int, accepted: Int) {
        for k in 0..<offered.count where drafted > k {
            offered[k] += 1
            if accepted > k { kept[k] += 1 }
        }
    }

    public var rates: [Double] {
        zip(kept, offered).map { $1 > 0 ? Double($0) / Double($1) : 0 }
    }
}

/// Live progress of a generation, delivered on the generating thread after every verified round and
/// once more at the end (`isFinal`, with the last round's tokens, which the loop decides last).
public struct GenerationProgress: Sendable {
    public let round: Int
    public let drafted: Int
    public let accepted: Int
    /// Generated ids that became final since the previous report (in order).
    public let newTokens: [Int32]
    /// Generated ids final so far (prompt excluded).
    public let tokenCount: Int
    public let elapsedSeconds: Double
    /// Decode rate: tokens after the first one per second since the prefill ended (0 until known).
    public let tokensPerSecond: Double
    public let acceptancePerSlot: [Double]
    public let isFinal: Bool
}

/// Opens a `.litertlm` bundle through the shared C core (LiteRT via dlopen) and runs the speculative
/// loop. One generation at a time per session (calls are serialized); `cancel()` may be called from
/// any thread.
public final class SpeculativeSession: @unchecked Sendable {
    public let bundlePath: String
    public let info: ModelInfo
    /// Called on the generating thread at the start (true) and end (false) of each phase interval.
    public var phaseHandler: ((Phase, Bool, Int) -> Void)?

    private let inner: UnsafeMutablePointer<emtp_backend>
    private let observed: UnsafeMutablePointer<emtp_backend>
    private let observer: OpaquePointer
    private let relay: Relay
    private let lock = NSLock()

    /// - Parameters:
    ///   - litertLibrary: path of libLiteRt (.so/.dylib or a framework binary); nil = the app bundle's
    ///     copy on Apple platforms, else $EDGE_MTP_LITERT_LIB, else the name the C core was built with.
    ///   - threads: CPU threads of LiteRT; nil = the active cores, at most 4 (LiteRT's own default ran
    ///     E2B's decode 1.4x slower than 2 threads on a 2-core machine).
    public init(bundlePath: String, litertLibrary: String? = nil, threads: Int? = nil) throws {
        let inner = UnsafeMutablePointer<emtp_backend>.allocate(capacity: 1)
        let observed = UnsafeMutablePointer<emtp_backend>.allocate(capacity: 1)
        inner.initialize(to: emtp_backend())
        observed.initialize(to: emtp_backend())
        var err = emtp_error()
        let library = litertLibrary ?? SpeculativeSession.bundledLiteRtLibrary()
        let cpuThreads = Int32(clamping: threads ?? min(4, ProcessInfo.processInfo.activeProcessorCount))
        let rc: Int32 = bundlePath.withCString { path in
            if let library {
                return library.withCString { lib in
                    var opts = emtp_litert_options(library: lib, threads: cpuThreads)
                    return emtp_litert_open(path, &opts, inner, &err)
                }
            }
            var opts = emtp_litert_options(library: nil, threads: cpuThreads)
            return emtp_litert_open(path, &opts, inner, &err)
        }
        if rc != 0 {
            inner.deallocate()
            observed.deallocate()
            throw EdgeMTPError(code: rc, error: &err)
        }
        let relay = Relay()
        var obs: OpaquePointer?
        let ctx = Unmanaged.passUnretained(relay).toOpaque()
        let orc = emtp_observer_create(inner, progressThunk, phaseThunk, ctx, observed, &obs, &err)
        guard orc == 0, let obs else {
            emtp_backend_destroy(inner)
            inner.deallocate()
            observed.deallocate()
            throw EdgeMTPError(code: orc, error: &err)
        }
        let b = inner.pointee
        self.bundlePath = bundlePath
        self.inner = inner
        self.observed = observed
        self.observer = obs
        self.relay = relay
        info = ModelInfo(
            modelID: cString(tuple: b.model_id), backend: b.name.map { String(cString: $0) } ?? "?",
            vocabSize: Int(b.vocab_size), hiddenSize: Int(b.hidden_size), context: Int(b.context),
            slidingWindow: Int(b.sliding_window), defaultDraftLength: Int(b.default_draft_len),
            hasDrafter: b.has_drafter != 0,
            stopIDs: withUnsafeBytes(of: b.stop_ids) { Array($0.bindMemory(to: Int32.self).prefix(Int(b.n_stop))) })
    }

    deinit {
        emtp_observer_free(observer)
        emtp_backend_destroy(inner)
        inner.deallocate()
        observed.deallocate()
    }

    /// libLiteRt inside the app bundle (Frameworks/LiteRt.framework/LiteRt or Frameworks/libLiteRt.dylib).
    public static func bundledLiteRtLibrary() -> String? {
        #if canImport(Darwin)
        guard let dir = Bundle.main.privateFrameworksPath else { return nil }
        for name in ["LiteRt.framework/LiteRt", "libLiteRt.dylib"] {
            let path = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        #endif
        return nil
    }

    /// Makes the running generation stop at its next draft or verify call (it throws `.cancelled`).
    public func cancel() {
        emtp_observer_cancel(observer)
    }

    /// Runs the loop on `prompt` (token ids). `onProgress` is called on this thread after every round.
    public func generate(prompt: [Int32], settings: GenerationSettings,
                         onProgress: ((GenerationProgress) -> Void)? = nil) throws -> Generation {
        if let problem = settings.problem { throw EdgeMTPError(.usage, problem) }
        if prompt.isEmpty { throw EdgeMTPError(.usage, "the prompt is empty; give at least one token id") }
        lock.lock()
        defer { lock.unlock() }

        var cfg = emtp_config()
        cfg.draft_len = Int32(settings.draftLength)
        cfg.max_new_tokens = Int32(settings.maxNewTokens)
        cfg.kv_view = settings.kvView == .clean ? Int32(EMTP_KV_CLEAN) : Int32(EMTP_KV_HF)
        if let s = settings.sampling {
            cfg.sample = 1
            cfg.sampling = emtp_sampling(temperature: s.temperature, top_k: Int32(s.topK), top_p: s.topP, seed: s.seed)
        }

        let start = DispatchTime.now().uptimeNanoseconds
        func seconds(since t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
        var prefillEnd: UInt64?
        var slots = SlotAcceptance(draftLength: settings.draftLength)
        var tokenCount = 0
        func rate() -> Double {
            guard let t = prefillEnd, tokenCount > 1 else { return 0 }
            let s = seconds(since: t)
            return s > 0 ? Double(tokenCount - 1) / s : 0
        }
        let handler = phaseHandler
        relay.onPhase = { phase, begin, round in
            let p: Phase = phase == Int32(EMTP_PHASE_PREFILL) ? .prefill : phase == Int32(EMTP_PHASE_DRAFT) ? .draft : .verify
            if p == .prefill && begin == 0 { prefillEnd = DispatchTime.now().uptimeNanoseconds }
            handler?(p, begin != 0, Int(round))
        }
        var lastRound = 0
        relay.onProgress = { p in
            slots.add(drafted: Int(p.drafted), accepted: Int(p.accepted))
            tokenCount = Int(p.n_tokens)
            lastRound = Int(p.round)
            let ids = p.n_new_tokens > 0 ? Array(UnsafeBufferPointer(start: p.new_tokens, count: Int(p.n_new_tokens))) : []
            onProgress?(GenerationProgress(round: Int(p.round), drafted: Int(p.drafted), accepted: Int(p.accepted),
                                 newTokens: ids, tokenCount: tokenCount, elapsedSeconds: seconds(since: start),
                                 tokensPerSecond: rate(), acceptancePerSlot: slots.rates, isFinal: false))
        }
        defer {
            relay.onPhase = nil
            relay.onProgress = nil
        }
        emtp_observer_reset(observer)
        let out = UnsafeMutablePointer<emtp_generation>.allocate(capacity: 1)
        out.initialize(to: emtp_generation())
        var err = emtp_error()
        let rc = prompt.withUnsafeBufferPointer { emtp_generate(observed, $0.baseAddress, Int32($0.count), &cfg, out, &err) }
        let wall = seconds(since: start)
        if rc != 0 {
            out.deallocate()
            throw EdgeMTPError(code: rc, error: &err)
        }
        let generation = Generation(owning: out, config: cfg, settings: settings, modelID: info.modelID,
                                    wallSeconds: wall)
        let rest = Array(generation.tokens.dropFirst(tokenCount))
        tokenCount = generation.tokens.count
        onProgress?(GenerationProgress(round: max(lastRound, generation.rounds.count - 1), drafted: 0, accepted: 0,
                             newTokens: rest, tokenCount: tokenCount, elapsedSeconds: wall, tokensPerSecond: rate(),
                             acceptancePerSlot: generation.acceptancePerSlot, isFinal: true))
        return generation
    }
}

/// Holds the Swift closures of the running generation for the C callbacks.
private final class Relay {
    var onProgress: ((emtp_progress) -> Void)?
    var onPhase: ((Int32, Int32, Int32) -> Void)?
}

private let progressThunk: emtp_progress_fn = { context, progress in
    guard let context, let progress else { return }
    Unmanaged<Relay>.fromOpaque(context).takeUnretainedValue().onProgress?(progress.pointee)
}

private let phaseThunk: emtp_phase_fn = { context, phase, begin, round in
    guard let context else { return }
    Unmanaged<Relay>.fromOpaque(context).takeUnretainedValue().onPhase?(phase, begin, round)
}

func cString<T>(tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        let bytes = raw.bindMemory(to: UInt8.self)
        let end = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[..<end], as: UTF8.self)
    }
}
