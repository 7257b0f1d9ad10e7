import Dispatch
import Foundation

/// Benchmark mode of the demo app, driven by profiling/ios/record.sh (profiling/README.md, "App
/// contract"): launch arguments `-bundle models/X.litertlm -mtp YES|NO -draft_len K -max_new_tokens N
/// -repetitions R -warmup W -bench_out bench/mtp_on -exit_when_done YES`, read from UserDefaults' argument
/// domain; paths relative to the app's Documents folder. Extra (optional): `-prompt_ids 2,17,300` or
/// `-prompt_file prompt.txt` (token ids: the app has no tokenizer).
public struct BenchmarkOptions: Equatable, Sendable {
    public var bundle: String
    public var mtp: Bool
    public var draftLength: Int
    public var maxNewTokens: Int
    public var repetitions: Int
    public var warmup: Int
    public var benchOut: String
    public var exitWhenDone: Bool
    public var promptIDs: [Int32]?
    public var promptFile: String?

    public static let defaultPrompt: [Int32] = [2, 17, 300, 41]

    public init(bundle: String, mtp: Bool = true, draftLength: Int = 4, maxNewTokens: Int = 256,
                repetitions: Int = 3, warmup: Int = 1, benchOut: String, exitWhenDone: Bool = false,
                promptIDs: [Int32]? = nil, promptFile: String? = nil) {
        self.bundle = bundle
        self.mtp = mtp
        self.draftLength = draftLength
        self.maxNewTokens = maxNewTokens
        self.repetitions = repetitions
        self.warmup = warmup
        self.benchOut = benchOut
        self.exitWhenDone = exitWhenDone
        self.promptIDs = promptIDs
        self.promptFile = promptFile
    }

    /// nil when there is no `bench_out` (interactive mode). `value` looks a key up, e.g.
    /// `{ UserDefaults.standard.string(forKey: $0) }` or `parseArguments(CommandLine.arguments)`.
    public static func from(_ value: (String) -> String?) throws -> BenchmarkOptions? {
        guard let out = value("bench_out"), !out.isEmpty else { return nil }
        guard let bundle = value("bundle"), !bundle.isEmpty else {
            throw EdgeMTPError(.usage, "benchmark mode needs -bundle PATH (relative to Documents)")
        }
        func int(_ key: String, _ fallback: Int) throws -> Int {
            guard let text = value(key) else { return fallback }
            guard let v = Int(text), v >= 0 else { throw EdgeMTPError(.usage, "-\(key): expected an integer >= 0, got \(text)") }
            return v
        }
        func bool(_ key: String, _ fallback: Bool) throws -> Bool {
            guard let text = value(key) else { return fallback }
            switch text.lowercased() {
            case "yes", "true", "1": return true
            case "no", "false", "0": return false
            default: throw EdgeMTPError(.usage, "-\(key): expected YES or NO, got \(text)")
            }
        }
        var ids: [Int32]?
        if let text = value("prompt_ids") {
            guard let parsed = parseTokenIDs(text) else { throw EdgeMTPError(.usage, "-prompt_ids: expected token ids, got \(text)") }
            ids = parsed
        }
        let o = BenchmarkOptions(
            bundle: bundle, mtp: try bool("mtp", true), draftLength: try int("draft_len", 4),
            maxNewTokens: try int("max_new_tokens", 256), repetitions: try int("repetitions", 3),
            warmup: try int("warmup", 1), benchOut: out, exitWhenDone: try bool("exit_when_done", false),
            promptIDs: ids, promptFile: value("prompt_file"))
        if o.repetitions < 1 || o.maxNewTokens < 1 {
            throw EdgeMTPError(.usage, "-repetitions and -max_new_tokens must be at least 1")
        }
        return o
    }

    /// `-key value` pairs of a launch argument list (what UserDefaults' argument domain holds).
    public static func parseArguments(_ arguments: [String]) -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a.count > 1, a.hasPrefix("-"), i + 1 < arguments.count, Double(a) == nil {
                out[String(a.dropFirst())] = arguments[i + 1]
                i += 2
            } else {
                i += 1
            }
        }
        return out
    }

    /// The generation settings of a measured repetition: greedy, K = draft_len with MTP on, else 0.
    public var settings: GenerationSettings {
        GenerationSettings(draftLength: mtp ? draftLength : 0, maxNewTokens: maxNewTokens)
    }
}

/// Intervals of the app contract: "generate" around each measured repetition; "prefill", "draft",
/// "verify" inside it. The app maps them to OSSignposter + mxSignpost; tests record them.
public enum Interval: String, Sendable, CaseIterable {
    case generate, prefill, draft, verify
}

public protocol Instrumentation: AnyObject {
    func begin(_ interval: Interval, message: String)
    func end(_ interval: Interval, message: String)
}

/// `bench.json`, format edge-mtp-bench/1 (src/edge_mtp/profiling/bench.py).
public struct BenchResult: Codable, Equatable, Sendable {
    public var format = "edge-mtp-bench/1"
    public var platform: String
    public var device: String
    public var bundle: String
    public var mtp: Bool
    public var draftLength: Int
    public var maxNewTokens: Int
    public var repetitions: Int
    public var warmup: Int
    public var tokensGenerated: Int
    public var wallTimeS: Double
    public var traces: [String]
    public var thermalStatus: [String: Int]?
    /// Extras: mean decode tokens/s (loop timings) and acceptance per slot over the measured runs.
    public var tokensPerSecond: Double
    public var acceptancePerSlot: [Double]
    public var model: String

    enum CodingKeys: String, CodingKey {
        case format, platform, device, bundle, mtp, repetitions, warmup, traces, model
        case draftLength = "draft_len", maxNewTokens = "max_new_tokens", tokensGenerated = "tokens_generated"
        case wallTimeS = "wall_time_s", thermalStatus = "thermal_status", tokensPerSecond = "tokens_per_second"
        case acceptancePerSlot = "accepted_per_position"
    }
}

/// Runs benchmark mode: `warmup` unmeasured generations, then `repetitions` measured ones, one step trace
/// each (trace_0.jsonl, ...), and `bench.json` last (written to a temporary name and renamed: the
/// recording script waits for it).
public final class BenchmarkRunner {
    public let options: BenchmarkOptions
    public let baseDirectory: URL
    public var platform = "ios"
    public var device = "unknown"
    public var litertLibrary: String?
    public var instrumentation: Instrumentation?
    /// ProcessInfo.thermalState.rawValue on Apple platforms; nil leaves thermal_status out.
    public var thermalState: (() -> Int)?

    public init(options: BenchmarkOptions, baseDirectory: URL) {
        self.options = options
        self.baseDirectory = baseDirectory
    }

    func resolve(_ path: String) -> URL {
        path.hasPrefix("/") ? URL(fileURLWithPath: path) : baseDirectory.appendingPathComponent(path)
    }

    func prompt(vocab: Int) throws -> [Int32] {
        if let ids = options.promptIDs { return ids }
        if let file = options.promptFile {
            let text = try String(contentsOf: resolve(file), encoding: .utf8)
            guard let ids = parseTokenIDs(text) else { throw EdgeMTPError(.usage, "\(file): expected token ids") }
            return ids
        }
        return BenchmarkOptions.defaultPrompt.map { $0 % Int32(vocab) }
    }

    /// Returns the URL of bench.json. `log` gets one line per step (the app shows it).
    @discardableResult
    public func run(log: (String) -> Void = { _ in }) throws -> URL {
        let out = resolve(options.benchOut)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let benchURL = out.appendingPathComponent("bench.json")
        try? FileManager.default.removeItem(at: benchURL)
        let session = try SpeculativeSession(bundlePath: resolve(options.bundle).path, litertLibrary: litertLibrary)
        let prompt = try prompt(vocab: session.info.vocabSize)
        let settings = options.settings
        log("loaded \(options.bundle) (\(session.info.modelID)); prompt \(prompt.count) ids, K=\(settings.draftLength)")
        for i in 0..<options.warmup {
            let g = try session.generate(prompt: prompt, settings: settings)
            log("warmup \(i + 1)/\(options.warmup): \(g.tokens.count) tokens")
        }
        let inst = instrumentation
        session.phaseHandler = { phase, begin, round in
            let interval: Interval = phase == .prefill ? .prefill : phase == .draft ? .draft : .verify
            if begin { inst?.begin(interval, message: "round=\(round)") } else { inst?.end(interval, message: "round=\(round)") }
        }
        let thermalStart = thermalState?()
        var generations: [Generation] = []
        var wall = 0.0
        for i in 0..<options.repetitions {
            inst?.begin(.generate, message: "draft_len=\(settings.draftLength)")
            let t0 = DispatchTime.now().uptimeNanoseconds
            let g = try session.generate(prompt: prompt, settings: settings)
            wall += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            inst?.end(.generate, message: "tokens=\(g.tokens.count)")
            generations.append(g)
            log("run \(i + 1)/\(options.repetitions): \(g.tokens.count) tokens, \(String(format: "%.1f", g.tokensPerSecond)) tok/s")
        }
        session.phaseHandler = nil
        let thermalEnd = thermalState?()
        var traces: [String] = []
        for (i, g) in generations.enumerated() {
            let name = "trace_\(i).jsonl"
            try g.writeTrace(to: out.appendingPathComponent(name).path, implementation: platform)
            traces.append(name)
        }
        var slots = SlotAcceptance(draftLength: settings.draftLength)
        for g in generations { for r in g.rounds.dropFirst() { slots.add(drafted: r.drafts.count, accepted: r.accepted) } }
        let rates = generations.map(\.tokensPerSecond)
        var thermal: [String: Int]?
        if let s = thermalStart, let e = thermalEnd { thermal = ["start": s, "end": e] }
        let result = BenchResult(
            platform: platform, device: device, bundle: (options.bundle as NSString).lastPathComponent, mtp: options.mtp,
            draftLength: settings.draftLength, maxNewTokens: options.maxNewTokens, repetitions: options.repetitions,
            warmup: options.warmup, tokensGenerated: generations.reduce(0) { $0 + $1.tokens.count }, wallTimeS: wall,
            traces: traces, thermalStatus: thermal, tokensPerSecond: rates.reduce(0, +) / Double(max(rates.count, 1)),
            acceptancePerSlot: slots.rates, model: session.info.modelID)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let tmp = out.appendingPathComponent("bench.json.tmp")
        try encoder.encode(result).write(to: tmp)
        if rename(tmp.path, benchURL.path) != 0 {
            throw EdgeMTPError(.io, "\(benchURL.path): cannot rename the result into place")
        }
        log("wrote \(benchURL.path): \(result.tokensGenerated) tokens in \(String(format: "%.2f", wall)) s")
        return benchURL
    }
}
