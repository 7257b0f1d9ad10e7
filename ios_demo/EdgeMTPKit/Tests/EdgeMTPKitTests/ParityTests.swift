import Foundation
import XCTest
@testable import EdgeMTPKit

/// The Swift layer against the Python reference: for each case of $EDGE_MTP_SWIFT_CASES (written by
/// tests/test_ios_swift.py: a tiny bundle, a prompt, settings, the Python trace), generate through
/// SpeculativeSession, write the Swift trace, and require trace parity (shared/contracts/trace-v1.md):
/// the same tokens, drafts, targets, accepted and emitted ids in every round, top logits within 1e-4,
/// the same summary. The streamed progress must add up to the same tokens and per-slot acceptance.
/// Skipped when the variable is not set.
final class ParityTests: XCTestCase {
    static let logitTolerance = 1e-4

    struct Case {
        let name: String
        let bundle: String
        let prompt: [Int32]
        let settings: GenerationSettings
        let reference: String
        let out: String
    }

    func cases() throws -> [Case] {
        guard let path = ProcessInfo.processInfo.environment["EDGE_MTP_SWIFT_CASES"] else {
            throw XCTSkip("EDGE_MTP_SWIFT_CASES is not set (tests/test_ios_swift.py sets it)")
        }
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let list = try XCTUnwrap(doc["cases"] as? [[String: Any]])
        return try list.map { c in
            var sampling: Sampling?
            if let s = c["sampling"] as? [String: Any] {
                sampling = Sampling(temperature: try XCTUnwrap(double(s["temperature"])), topK: try XCTUnwrap(int(s["top_k"])),
                                    topP: try XCTUnwrap(double(s["top_p"])), seed: UInt64(try XCTUnwrap(int(s["seed"]))))
            }
            return Case(name: try XCTUnwrap(c["name"] as? String), bundle: try XCTUnwrap(c["bundle"] as? String),
                        prompt: try XCTUnwrap(ints(c["prompt"])).map { Int32($0) },
                        settings: GenerationSettings(draftLength: try XCTUnwrap(int(c["draft_len"])),
                                                     maxNewTokens: try XCTUnwrap(int(c["max_new_tokens"])),
                                                     sampling: sampling),
                        reference: try XCTUnwrap(c["reference"] as? String), out: try XCTUnwrap(c["out"] as? String))
        }
    }

    func testSwiftTracesEqualThePythonReference() throws {
        let all = try cases()
        XCTAssertFalse(all.isEmpty)
        var sessions: [String: SpeculativeSession] = [:]
        for c in all {
            let session = try sessions[c.bundle] ?? SpeculativeSession(bundlePath: c.bundle)
            sessions[c.bundle] = session
            var streamed: [Int32] = []
            var last: GenerationProgress?
            var rounds = 0
            let g = try session.generate(prompt: c.prompt, settings: c.settings) { p in
                streamed += p.newTokens
                if !p.isFinal { rounds += 1 }
                last = p
            }
            try g.writeTrace(to: c.out)
            let ours = try readTrace(c.out)
            let ref = try readTrace(c.reference)
            let problems = compareTraces(ours, ref, tolerance: Self.logitTolerance)
            XCTAssertEqual(problems, [], "\(c.name): Swift trace differs from the Python reference")
            XCTAssertEqual(ours.first?["implementation"] as? String, "swift")
            XCTAssertEqual(streamed, g.tokens, "\(c.name): streamed tokens")
            XCTAssertEqual(rounds, g.rounds.count - 1, "\(c.name): one progress report per decode round")
            XCTAssertEqual(last?.isFinal, true)
            XCTAssertEqual(last?.tokenCount, g.tokens.count)
            XCTAssertEqual(last?.acceptancePerSlot, g.acceptancePerSlot)
            print("parity \(c.name): \(g.tokens.count) tokens, \(g.rounds.count) rounds, accepted \(g.accepted)/\(g.drafted), "
                  + "\(String(format: "%.0f", g.tokensPerSecond)) tok/s: \(problems.isEmpty ? "equal" : "DIFFERENT")")
        }
    }

    func testCancelStopsTheRunAndTheSessionStaysUsable() throws {
        let all = try cases()
        guard let c = all.first(where: { $0.settings.draftLength > 0 }) else { throw XCTSkip("no K > 0 case") }
        let session = try SpeculativeSession(bundlePath: c.bundle)
        var reports = 0
        XCTAssertThrowsError(try session.generate(prompt: c.prompt, settings: c.settings) { _ in
            reports += 1
            if reports == 2 { session.cancel() }
        }) { error in
            XCTAssertEqual((error as? EdgeMTPError)?.kind, .cancelled)
        }
        XCTAssertEqual(reports, 2)
        let g = try session.generate(prompt: c.prompt, settings: c.settings)
        let ref = try readTrace(c.reference)
        XCTAssertEqual(g.tokens.map { Int($0) }, ints(ref.last?["tokens"]))
    }

    func testErrors() throws {
        let all = try cases()
        let c = try XCTUnwrap(all.first)
        XCTAssertThrowsError(try SpeculativeSession(bundlePath: "/nonexistent.litertlm")) { error in
            XCTAssertEqual((error as? EdgeMTPError)?.kind, .io, "\(error)")
        }
        let session = try SpeculativeSession(bundlePath: c.bundle)
        XCTAssertGreaterThan(session.info.vocabSize, 0)
        XCTAssertTrue(session.info.hasDrafter)
        XCTAssertTrue(session.info.modelID.hasPrefix("sha256:"))
        XCTAssertThrowsError(try session.generate(prompt: [], settings: GenerationSettings(draftLength: 1))) { error in
            XCTAssertEqual((error as? EdgeMTPError)?.kind, .usage)
        }
        XCTAssertThrowsError(try session.generate(prompt: [Int32(session.info.vocabSize)], settings: GenerationSettings(draftLength: 1))) { error in
            XCTAssertEqual((error as? EdgeMTPError)?.kind, .usage)
        }
        XCTAssertThrowsError(try session.generate(prompt: [1], settings: GenerationSettings(draftLength: 1, maxNewTokens: 0)))
    }

    /// Benchmark mode into $EDGE_MTP_SWIFT_BENCH_DIR (the pytest checks bench.json with the profiling parser).
    func testBenchmarkMode() throws {
        let all = try cases()
        let c = try XCTUnwrap(all.first)
        guard let dir = ProcessInfo.processInfo.environment["EDGE_MTP_SWIFT_BENCH_DIR"] else {
            throw XCTSkip("EDGE_MTP_SWIFT_BENCH_DIR is not set")
        }
        let args = ["/app", "-bundle", c.bundle, "-mtp", "YES", "-draft_len", "3", "-max_new_tokens", "12",
                    "-repetitions", "2", "-warmup", "1", "-bench_out", "mtp_on", "-exit_when_done", "YES",
                    "-prompt_ids", c.prompt.map(String.init).joined(separator: ",")]
        let values = BenchmarkOptions.parseArguments(args)
        let options = try XCTUnwrap(try BenchmarkOptions.from { values[$0] })
        let runner = BenchmarkRunner(options: options, baseDirectory: URL(fileURLWithPath: dir))
        let recorder = Recorder()
        runner.instrumentation = recorder
        runner.device = "linux-x86_64"
        runner.thermalState = { 0 }
        let url = try runner.run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: url.path))
        XCTAssertTrue(recorder.open.isEmpty, "unbalanced intervals: \(recorder.open)")
        XCTAssertEqual(recorder.counts[.generate], 2)
        XCTAssertEqual(recorder.counts[.prefill], 2)
        XCTAssertGreaterThan(recorder.counts[.draft] ?? 0, 0)
        XCTAssertGreaterThanOrEqual(recorder.counts[.verify] ?? 0, recorder.counts[.draft] ?? 0, "one draft interval per round that drafts")
    }
}

final class Recorder: Instrumentation {
    var open: [Interval] = []
    var counts: [Interval: Int] = [:]

    func begin(_ interval: Interval, message: String) {
        if interval != .generate { XCTAssertEqual(open, [.generate], "\(interval) outside generate") }
        open.append(interval)
        counts[interval, default: 0] += 1
    }

    func end(_ interval: Interval, message: String) {
        XCTAssertEqual(open.last, interval)
        open.removeLast()
    }
}

// MARK: trace-v1 reading and comparison (what src/edge_mtp/runtime/native.py compare_traces checks)

func int(_ v: Any?) -> Int? { (v as? NSNumber)?.intValue ?? (v as? Int) }
func double(_ v: Any?) -> Double? { (v as? NSNumber)?.doubleValue ?? (v as? Double) }
func ints(_ v: Any?) -> [Int]? {
    guard let a = v as? [Any] else { return nil }
    let out = a.compactMap(int)
    return out.count == a.count ? out : nil
}

func readTrace(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return try text.split(separator: "\n").map { line in
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }
}

func same(_ a: Any?, _ b: Any?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case let (x as [String: Any], y as [String: Any]):
        return x.count == y.count && x.allSatisfy { same($0.value, y[$0.key]) }
    case let (x as [Any], y as [Any]):
        return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
    case let (x as String, y as String): return x == y
    case let (x as NSNumber, y as NSNumber): return x.doubleValue == y.doubleValue
    default: return false
    }
}

func compareTraces(_ ours: [[String: Any]], _ ref: [[String: Any]], tolerance: Double) -> [String] {
    var problems: [String] = []
    guard let ha = ours.first, let hb = ref.first, let sa = ours.last, let sb = ref.last else { return ["empty trace"] }
    for key in ["format", "model", "prompt_ids", "draft_len", "max_new_tokens", "sampling", "kv_view"] where !same(ha[key], hb[key]) {
        problems.append("header \(key): \(String(describing: ha[key])) != \(String(describing: hb[key]))")
    }
    let ra = ours.filter { $0["type"] as? String == "round" }
    let rb = ref.filter { $0["type"] as? String == "round" }
    if ra.count != rb.count { problems.append("\(ra.count) rounds != \(rb.count)") }
    for (a, b) in zip(ra, rb) {
        let index = int(b["index"]) ?? -1
        for key in ["index", "position", "drafts", "target", "accepted", "emitted"] where !same(a[key], b[key]) {
            problems.append("round \(index) \(key): \(String(describing: a[key])) != \(String(describing: b[key]))")
        }
        let ta = (a["top_logits"] as? [[Any]]) ?? [], tb = (b["top_logits"] as? [[Any]]) ?? []
        if ta.map({ int($0.first) }) != tb.map({ int($0.first) }) { problems.append("round \(index) top_logits ids differ") }
        let worst = zip(ta, tb).map { abs((double($0.last) ?? .nan) - (double($1.last) ?? .nan)) }.max() ?? 0
        if !(worst <= tolerance) { problems.append("round \(index) top_logits differ by \(worst) > \(tolerance)") }
    }
    for key in ["tokens", "rounds", "drafted", "accepted", "accepted_per_position", "mean_emitted_per_round", "stop"]
    where !same(sa[key], sb[key]) {
        problems.append("summary \(key): \(String(describing: sa[key])) != \(String(describing: sb[key]))")
    }
    return problems
}
