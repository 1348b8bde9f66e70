// ser-node: the Arduino Nano 33 BLE Sense as a speech emotion front end for a Pi.
//
// PDM microphone (16 kHz) -> node.c (gate, front end; with gate.kind speech in features
// mode the speech gate's model on TFLite Micro; in results mode the emotion model) ->
// framed serial protocol on the USB port (PROTOCOL.md). The Pi's ser-edge configures the
// mode and the gate; this file only connects the board's parts to node.c, the same core
// the host emulator runs in the tests (deploy/arduino/host/emulator.py).
//
// Before building: .venv/bin/python deploy/arduino/gen_model_files.py deploy/models/ser-tiny
// (writes model_data.*, speech_model_data.* and model_info.h here). README.md has the steps.

#include <Chirale_TensorFlowLite.h>
#include <PDM.h>

#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" {
#include "node.h"
}
#include "model_data.h"
#include "model_info.h"
#include "speech_model_data.h"

namespace {

constexpr char kFirmware[] = "0.1.0";
// Audio between the microphone and the loop, in 20 ms frames: enough for the loop to be
// busy with two windows of the model (model_info.h sizes it from the model's cost in
// cycles, at 1.4 cycles per instruction).
constexpr int kRingFrames = SER_MODEL_RING_FRAMES;

// The PDM interrupt fills frames; loop() consumes them. Single producer, single consumer.
int16_t ring[kRingFrames][SER_VAD_FRAME];
volatile uint32_t written = 0, read_frames = 0, overruns = 0;
uint32_t reported_overruns = 0;
int16_t pdm_buffer[256];
int pdm_fill = 0;

// One arena for both models: the emotion model runs in results mode only, the speech
// gate's in features mode only, so the arena holds the one the mode uses. The first window
// after a CONFIG that changed the mode plans the other model's tensors anew (a few ms,
// once); the old interpreter is destroyed first, while its tensors are still valid. The
// slack is 512 bytes: under Chirale 2.0.0 the models use 30,996 and 10,308 bytes, less
// than the manifests' figures (the reference interpreter's), which the arena already holds.
constexpr size_t kArenaBytes =
    (SER_MODEL_ARENA_BYTES > SER_SPEECH_ARENA_BYTES ? SER_MODEL_ARENA_BYTES : SER_SPEECH_ARENA_BYTES) + 512;
alignas(16) uint8_t arena[kArenaBytes];
tflite::MicroMutableOpResolver<SER_MODEL_OP_COUNT> resolver;
tflite::MicroMutableOpResolver<SER_SPEECH_OP_COUNT> speech_resolver;
alignas(tflite::MicroInterpreter) uint8_t interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter *interpreter = nullptr;  // the model that holds the arena, if any
enum Loaded { kNone, kEmotion, kSpeech } loaded = kNone;

// The interpreter for this model, its tensors allocated in the arena; nullptr if they do not fit.
tflite::MicroInterpreter *load(Loaded which) {
    if (loaded == which) {
        return interpreter;
    }
    if (interpreter != nullptr) {
        interpreter->~MicroInterpreter();
        interpreter = nullptr;
        loaded = kNone;
    }
    const tflite::Model *model = tflite::GetModel(which == kEmotion ? g_ser_model : g_ser_speech_model);
    const tflite::MicroOpResolver &ops = which == kEmotion
                                             ? static_cast<const tflite::MicroOpResolver &>(resolver)
                                             : static_cast<const tflite::MicroOpResolver &>(speech_resolver);
    auto *candidate = new (interpreter_storage) tflite::MicroInterpreter(model, ops, arena, sizeof arena);
    if (candidate->AllocateTensors() != kTfLiteOk) {
        candidate->~MicroInterpreter();
        return nullptr;
    }
    interpreter = candidate;
    loaded = which;
    return interpreter;
}

struct ser_node node;

void on_pdm() {
    int bytes = PDM.available();
    PDM.read(pdm_buffer, bytes);
    for (int i = 0; i < bytes / 2; i++) {
        if (written - read_frames >= kRingFrames) {  // the loop fell behind: drop, count
            overruns++;
            pdm_fill = 0;
            return;
        }
        ring[written % kRingFrames][pdm_fill++] = pdm_buffer[i];
        if (pdm_fill == SER_VAD_FRAME) {
            pdm_fill = 0;
            written++;
        }
    }
}

void write_serial(void *, const uint8_t *data, size_t n) {
    Serial.write(data, n);
}

int classify(void *, const int8_t *window, int8_t *scores) {
    tflite::MicroInterpreter *emotion = load(kEmotion);
    if (emotion == nullptr) {
        return -1;
    }
    TfLiteTensor *input = emotion->input(0);
    memcpy(input->data.int8, window, SER_MODEL_WINDOW_FRAMES * SER_NFEATURES);
    emotion->Reset();  // recurrent state starts afresh for each window, as on the Pi
    if (emotion->Invoke() != kTfLiteOk) {
        return -1;
    }
    memcpy(scores, emotion->output(0)->data.int8, SER_MODEL_LABELS);
    return 0;
}

int speech(void *, const int8_t *window, int8_t *score) {
    tflite::MicroInterpreter *gate = load(kSpeech);
    if (gate == nullptr) {
        return -1;
    }
    TfLiteTensor *input = gate->input(0);
    memcpy(input->data.int8, window, SER_SPEECH_WINDOW_FRAMES * SER_NFEATURES);
    if (gate->Invoke() != kTfLiteOk) {
        return -1;
    }
    *score = gate->output(0)->data.int8[SER_SPEECH_LABEL];
    return 0;
}

#define SER_ADD_OP(method) resolver.method();
#define SER_ADD_SPEECH_OP(method) speech_resolver.method();

}  // namespace

void setup() {
    Serial.begin(115200);
    SER_MODEL_OPS(SER_ADD_OP)
    SER_SPEECH_OPS(SER_ADD_SPEECH_OP)
    bool speech_ok = load(kSpeech) != nullptr;  // each model in turn: both must fit the one arena
    bool model_ok = load(kEmotion) != nullptr;
    // A model that failed to allocate is offered as absent: the Pi refuses that mode by name.
    struct ser_node_io io = {write_serial, model_ok ? classify : nullptr, nullptr, speech_ok ? speech : nullptr};
    struct ser_node_model model = {SER_MODEL_SHA256,         SER_MODEL_LABELS,         SER_MODEL_WINDOW_FRAMES,
                                   SER_MODEL_HOP_FRAMES,     SER_SPEECH_SHA256,        SER_SPEECH_WINDOW_FRAMES,
                                   SER_SPEECH_HOP_FRAMES};
    ser_node_init(&node, &io, &model, kFirmware);
    PDM.onReceive(on_pdm);
    PDM.setGain(20);
    if (!PDM.begin(1, 16000)) {
        while (true) {  // no microphone: say so every second
            ser_node_log(&node, "PDM microphone failed to start");
            delay(1000);
        }
    }
}

void loop() {
    uint8_t buffer[64];
    int n = 0;
    while (Serial.available() && n < (int)sizeof buffer) {
        buffer[n++] = (uint8_t)Serial.read();
    }
    if (n) {
        ser_node_receive(&node, buffer, (size_t)n, millis());
    }
    ser_node_tick(&node, millis());
    while (read_frames != written) {
        ser_node_audio(&node, ring[read_frames % kRingFrames]);
        read_frames++;
    }
    if (overruns != reported_overruns) {  // the loop fell behind the microphone
        reported_overruns = overruns;
        char text[64];
        snprintf(text, sizeof text, "audio ring overrun: audio dropped %lu times so far", (unsigned long)reported_overruns);
        ser_node_log(&node, text);
    }
}
