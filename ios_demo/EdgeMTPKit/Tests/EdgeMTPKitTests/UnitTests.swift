import XCTest
@testable import EdgeMTPKit

final class UnitTests: XCTestCase {
    func testSlotAcceptanceCountsLikeTheTraceSummary() {
        var s = SlotAcceptance(draftLength: 3)
        s.add(drafted: 3, accepted: 1)
        s.add(drafted: 3, accepted: 3)
        s.add(drafted: 1, accepted: 0)
        XCTAssertEqual(s.offered, [3, 2, 2])
        XCTAssertEqual(s.kept, [2, 1, 1])
        XCTAssertEqual(s.rates, [2.0 / 3.0, 0.5, 0.5])
        XCTAssertEqual(SlotAcceptance(draftLength: 0).rates, [])
    }
}

final class OptionsTests: XCTestCase {
    func testBenchmarkOptionsFromLaunchArguments() throws {
        let values = BenchmarkOptions.parseArguments(["/app", "-bundle", "models/m.litertlm", "-mtp", "NO", "-draft_len", "4",
                                                      "-max_new_tokens", "256", "-repetitions", "3", "-warmup", "1",
                                                      "-bench_out", "bench/mtp_off", "-exit_when_done", "YES"])
        let o = try XCTUnwrap(try BenchmarkOptions.from { values[$0] })
        XCTAssertEqual(o, BenchmarkOptions(bundle: "models/m.litertlm", mtp: false, draftLength: 4, maxNewTokens: 256,
                                           repetitions: 3, warmup: 1, benchOut: "bench/mtp_off", exitWhenDone: true))
        XCTAssertEqual(o.settings.draftLength, 0, "MTP off = K 0")
        XCTAssertNil(try BenchmarkOptions.from { _ in nil }, "no bench_out: interactive mode")
        XCTAssertThrowsError(try BenchmarkOptions.from { ["bench_out": "x", "bundle": "b", "mtp": "maybe"][$0] })
        XCTAssertThrowsError(try BenchmarkOptions.from { ["bench_out": "x"][$0] })
        XCTAssertThrowsError(try BenchmarkOptions.from { ["bench_out": "x", "bundle": "b", "repetitions": "0"][$0] })
    }

    func testSettingsValidation() {
        XCTAssertNil(GenerationSettings(draftLength: 4).problem)
        XCTAssertNotNil(GenerationSettings(draftLength: -1).problem)
        XCTAssertNotNil(GenerationSettings(draftLength: 65).problem)
        XCTAssertNotNil(GenerationSettings(draftLength: 1, maxNewTokens: 0).problem)
        XCTAssertNotNil(GenerationSettings(draftLength: 1, sampling: Sampling(temperature: 0)).problem)
        XCTAssertNotNil(GenerationSettings(draftLength: 1, sampling: Sampling(temperature: 1, topP: 0)).problem)
        XCTAssertEqual(GenerationSettings(draftLength: 3).withoutDrafts.draftLength, 0)
    }

    func testTokenIDs() {
        XCTAssertEqual(parseTokenIDs("1,2, 3\n4"), [1, 2, 3, 4])
        XCTAssertNil(parseTokenIDs("1,x"))
        XCTAssertNil(parseTokenIDs(" "))
    }

    func testBenchResultKeys() throws {
        let r = BenchResult(platform: "ios", device: "d", bundle: "b", mtp: true, draftLength: 4, maxNewTokens: 8,
                            repetitions: 1, warmup: 0, tokensGenerated: 8, wallTimeS: 0.5, traces: ["trace_0.jsonl"],
                            thermalStatus: nil, tokensPerSecond: 16, acceptancePerSlot: [1, 0.5, 0, 0], model: "m")
        let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as? [String: Any])
        for key in ["format", "platform", "mtp", "draft_len", "tokens_generated", "wall_time_s", "traces"] {
            XCTAssertNotNil(doc[key], key)
        }
        XCTAssertEqual(doc["format"] as? String, "edge-mtp-bench/1")
    }
}
