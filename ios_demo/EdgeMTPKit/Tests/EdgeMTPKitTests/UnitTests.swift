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
