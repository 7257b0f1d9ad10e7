import Combine
import EdgeMTPKit
import Foundation
import UIKit

/// The state of the one screen, and benchmark mode. Generations run off the main thread; progress
/// reports are applied on the main queue in order.
@MainActor
final class DemoModel: ObservableObject {
    // settings
    @Published var bundleURL: URL?
    @Published var promptText = "2, 17, 300, 41"
    @Published var mtp = true
    @Published var draftLength = 4
    @Published var maxNewTokens = 128
    @Published var sampling = false
    @Published var temperature = 0.8
    @Published var seedText = "0"
    // live
    @Published var running = false
    @Published var tokens: [Int32] = []
    @Published var rounds = 0
    @Published var tokensPerSecond = 0.0
    @Published var acceptance: [Double] = []
    @Published var status = "Choose a .litertlm bundle."
    @Published var lastTrace: URL?
    @Published var benchmarkLog: [String] = []
    @Published var info: ModelInfo?

    private var session: SpeculativeSession?
    private var lastGeneration: Generation?

    static var documents: URL {
        FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
    }

    var bundleName: String { bundleURL?.lastPathComponent ?? "no bundle" }

    var settings: GenerationSettings {
        var s = GenerationSettings(draftLength: mtp ? draftLength : 0, maxNewTokens: maxNewTokens)
        if sampling {
            s.sampling = Sampling(temperature: temperature, seed: UInt64(seedText) ?? 0)
        }
        return s
    }

    /// Copies a picked bundle into Documents/models (the picker's URL is only valid for a while) and opens it.
    func importBundle(_ picked: URL) {
        let scoped = picked.startAccessingSecurityScopedResource()
        defer { if scoped { picked.stopAccessingSecurityScopedResource() } }
        let models = Self.documents.appendingPathComponent("models", isDirectory: true)
        let dest = models.appendingPathComponent(picked.lastPathComponent)
        do {
            try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
            if dest.standardizedFileURL != picked.standardizedFileURL {
                try? FileManager.default.removeItem(at: dest)
                try FileManager.default.copyItem(at: picked, to: dest)
            }
            open(dest)
        } catch {
            status = "Cannot copy \(picked.lastPathComponent): \(error.localizedDescription)"
        }
    }

    func open(_ url: URL) {
        status = "Loading \(url.lastPathComponent)…"
        session = nil
        info = nil
        Task.detached(priority: .userInitiated) {
            do {
                let s = try SpeculativeSession(bundlePath: url.path)
                await MainActor.run {
                    self.session = s
                    self.bundleURL = url
                    self.info = s.info
                    self.draftLength = max(1, s.info.defaultDraftLength)
                    self.status = "Loaded \(url.lastPathComponent) (\(s.info.modelID), vocab \(s.info.vocabSize))"
                }
            } catch {
                await MainActor.run { self.status = "Cannot open \(url.lastPathComponent): \(error)" }
            }
        }
    }

    func run() {
        guard let session, !running else { return }
        guard let prompt = parseTokenIDs(promptText) else {
            status = "The prompt must be token ids, e.g. 2, 17, 300 (the demo has no tokenizer)."
            return
        }
        let settings = self.settings
        if let problem = settings.problem {
            status = problem
            return
        }
        running = true
        tokens = []
        rounds = 0
        tokensPerSecond = 0
        acceptance = Array(repeating: 0, count: settings.draftLength)
        status = "Generating…"
        UIApplication.shared.isIdleTimerDisabled = true
        Task.detached(priority: .userInitiated) {
            do {
                let g = try session.generate(prompt: prompt, settings: settings) { p in
                    DispatchQueue.main.async { self.apply(p) }
                }
                await MainActor.run {
                    self.lastGeneration = g
                    self.finish("\(g.tokens.count) tokens, \(g.rounds.count) rounds, stop: \(g.stop), "
                        + String(format: "%.1f tok/s, %.2f tokens/round", g.tokensPerSecond, g.meanEmittedPerRound))
                }
            } catch {
                await MainActor.run { self.finish("Stopped: \(error)") }
            }
        }
    }

    func stop() {
        session?.cancel()
    }

    private func apply(_ p: GenerationProgress) {
        tokens += p.newTokens
        rounds = p.round
        tokensPerSecond = p.tokensPerSecond
        acceptance = p.acceptancePerSlot
    }

    private func finish(_ message: String) {
        running = false
        status = message
        UIApplication.shared.isIdleTimerDisabled = false
    }

    /// Writes the last generation's step trace (docs/trace.md) to Documents/traces/.
    func writeTrace() {
        guard let g = lastGeneration else { return }
        let dir = Self.documents.appendingPathComponent("traces", isDirectory: true)
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "-")
        let url = dir.appendingPathComponent("trace-\(stamp)-K\(g.settings.draftLength).jsonl")
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try g.writeTrace(to: url.path, implementation: "ios")
            lastTrace = url
            status = "Wrote traces/\(url.lastPathComponent)"
        } catch {
            status = "Cannot write the trace: \(error)"
        }
    }

    // MARK: benchmark mode (profiling/README.md, iOS app contract)

    /// Runs benchmark mode when launched with `-bench_out …` (profiling/ios/record.sh), then exits if asked.
    func startBenchmarkIfRequested() async {
        let options: BenchmarkOptions?
        do {
            options = try BenchmarkOptions.from { UserDefaults.standard.string(forKey: $0) }
        } catch {
            benchmarkLog.append("benchmark arguments: \(error)")
            return
        }
        guard let options else { return }
        await runBenchmark(options)
        if options.exitWhenDone { exit(0) }
    }

    /// The same run from the screen: MTP off then on into Documents/bench/manual/mtp_{off,on}.
    func runManualBenchmark() async {
        guard let bundle = bundleURL else { return }
        let rel = bundle.path.replacingOccurrences(of: Self.documents.path + "/", with: "")
        for mtpOn in [false, true] {
            let o = BenchmarkOptions(bundle: rel, mtp: mtpOn, draftLength: draftLength, maxNewTokens: maxNewTokens,
                                     repetitions: 3, warmup: 1, benchOut: "bench/manual/mtp_\(mtpOn ? "on" : "off")",
                                     promptIDs: parseTokenIDs(promptText))
            await runBenchmark(o)
        }
    }

    private func runBenchmark(_ options: BenchmarkOptions) async {
        running = true
        UIApplication.shared.isIdleTimerDisabled = true
        benchmarkLog.append("benchmark: MTP \(options.mtp ? "on, K=\(options.draftLength)" : "off") → \(options.benchOut)")
        let runner = BenchmarkRunner(options: options, baseDirectory: Self.documents)
        runner.device = Self.deviceModel()
        runner.thermalState = { ProcessInfo.processInfo.thermalState.rawValue }
        runner.instrumentation = Signposts(category: options.mtp ? "mtp_on" : "mtp_off")
        let result: String = await Task.detached(priority: .userInitiated) {
            do {
                let url = try runner.run { line in DispatchQueue.main.async { self.benchmarkLog.append(line) } }
                return "benchmark done: \(url.lastPathComponent)"
            } catch {
                return "benchmark failed: \(error)"
            }
        }.value
        benchmarkLog.append(result)
        status = result
        running = false
        UIApplication.shared.isIdleTimerDisabled = false
    }

    /// e.g. "iPhone16,1"
    static func deviceModel() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: info.machine) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }
}
