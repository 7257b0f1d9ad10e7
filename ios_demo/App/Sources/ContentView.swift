import EdgeMTPKit
import SwiftUI
import UniformTypeIdentifiers

/// The one screen: pick a bundle, prompt (token ids), MTP on/off, K, live tokens/s and acceptance per
/// draft slot, write the step trace, and the benchmark (MTP off then on) for the profiling scripts.
struct ContentView: View {
    @ObservedObject var model: DemoModel
    @State private var picking = false

    var body: some View {
        NavigationStack {
            Form {
                Section("Model") {
                    LabeledContent("Bundle", value: model.bundleName)
                    if let info = model.info {
                        LabeledContent("Model", value: info.modelID)
                        LabeledContent("Drafter", value: info.hasDrafter ? "yes (K=\(info.defaultDraftLength))" : "none")
                    }
                    Button("Choose .litertlm bundle…") { picking = true }
                        .disabled(model.running)
                }
                Section {
                    TextField("token ids, e.g. 2, 17, 300", text: $model.promptText, axis: .vertical)
                        .font(.body.monospaced())
                        .keyboardType(.numbersAndPunctuation)
                        .autocorrectionDisabled()
                } header: {
                    Text("Prompt (token ids)")
                }
                Section("Decoding") {
                    Toggle("MTP (speculative drafts)", isOn: $model.mtp)
                    Stepper("Drafts per round K: \(model.draftLength)", value: $model.draftLength, in: 1...8)
                        .disabled(!model.mtp)
                    Stepper("Max new tokens: \(model.maxNewTokens)", value: $model.maxNewTokens, in: 1...4096, step: 32)
                    Toggle("Sampling (seeded)", isOn: $model.sampling)
                    if model.sampling {
                        HStack {
                            Text("Temperature \(model.temperature, specifier: "%.2f")")
                            Slider(value: $model.temperature, in: 0.05...2.0)
                        }
                        TextField("seed", text: $model.seedText)
                            .keyboardType(.numberPad)
                    }
                }
                .disabled(model.running)
                Section {
                    if model.running {
                        Button("Stop", role: .destructive) { model.stop() }
                    } else {
                        Button("Generate") { model.run() }
                            .disabled(model.info == nil)
                    }
                    Button("Write trace") { model.writeTrace() }
                        .disabled(model.running)
                    if let trace = model.lastTrace {
                        ShareLink(item: trace) { Label(trace.lastPathComponent, systemImage: "square.and.arrow.up") }
                    }
                    Text(model.status).font(.footnote).foregroundStyle(.secondary)
                }
                Section("Live") {
                    LabeledContent("Tokens/s", value: String(format: "%.1f", model.tokensPerSecond))
                    LabeledContent("Tokens", value: "\(model.tokens.count) in \(model.rounds) rounds")
                    ForEach(Array(model.acceptance.enumerated()), id: \.offset) { slot, rate in
                        HStack {
                            Text("slot \(slot + 1)").font(.caption.monospaced())
                            ProgressView(value: rate)
                            Text("\(Int((rate * 100).rounded()))%").font(.caption.monospaced()).frame(width: 44)
                        }
                    }
                    Text(model.tokens.map(String.init).joined(separator: " "))
                        .font(.caption.monospaced())
                        .textSelection(.enabled)
                }
                Section("Benchmark") {
                    Button("Run benchmark (MTP off, then on)") {
                        Task { await model.runManualBenchmark() }
                    }
                    .disabled(model.running || model.info == nil)
                    ForEach(Array(model.benchmarkLog.suffix(12).enumerated()), id: \.offset) { _, line in
                        Text(line).font(.caption2.monospaced())
                    }
                }
            }
            .navigationTitle("Edge MTP")
            .fileImporter(isPresented: $picking, allowedContentTypes: [.data], allowsMultipleSelection: false) { result in
                if case .success(let urls) = result, let url = urls.first {
                    model.importBundle(url)
                }
            }
        }
    }
}
