import Foundation
import XCTest
@testable import EdgeMTPKit

/// The Swift layer against the Python reference: for each case of $EDGE_MTP_SWIFT_CASES (written by
/// tests/test_ios_swift.py: a tiny bundle, a prompt, settings, the Python trace), generate through
/// SpeculativeSession and write the Swift trace (docs/trace.md). Trace parity itself is judged once, by
/// the Python side's `edge_mtp.runtime.tracediff.diff_traces` on these files; here the streamed progress
/// must add up to the written trace's tokens and per-slot acceptance, and the tokens must be the
/// reference's. Skipped when the variable is not set.
final class ParityTests: XCTestCase {
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
            XCTAssertEqual(ints(ours.last?["tokens"]), ints(ref.last?["tokens"]), "\(c.name): tokens differ from the reference")
            XCTAssertEqual(ours.first?["implementation"] as? String, "swift")
            XCTAssertEqual(streamed, g.tokens, "\(c.name): streamed tokens")
            XCTAssertEqual(rounds, g.rounds.count - 1, "\(c.name): one progress report per decode round")
            XCTAssertEqual(last?.isFinal, true)
            XCTAssertEqual(last?.tokenCount, g.tokens.count)
            XCTAssertEqual(last?.acceptancePerSlot, g.acceptancePerSlot)
            print("trace \(c.name): \(g.tokens.count) tokens, \(g.rounds.count) rounds, accepted \(g.accepted)/\(g.drafted), "
                  + "\(String(format: "%.0f", g.tokensPerSecond)) tok/s")
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

// MARK: trace reading (the comparison is the Python side's diff_traces)

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

