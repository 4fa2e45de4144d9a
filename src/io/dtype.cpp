#include "visionllm/dtype.h"

#include "visionllm/error.h"

namespace visionllm {

namespace {
struct DTypeRow {
    DType dt;
    size_t size;
    const char * name;
    const char * st_name;
    const char * torch_storage;
};

const DTypeRow k_rows[] = {
    {DType::F64, 8, "f64", "F64", "DoubleStorage"},
    {DType::F32, 4, "f32", "F32", "FloatStorage"},
    {DType::F16, 2, "f16", "F16", "HalfStorage"},
    {DType::BF16, 2, "bf16", "BF16", "BFloat16Storage"},
    {DType::I64, 8, "i64", "I64", "LongStorage"},
    {DType::I32, 4, "i32", "I32", "IntStorage"},
    {DType::I16, 2, "i16", "I16", "ShortStorage"},
    {DType::I8, 1, "i8", "I8", "CharStorage"},
    {DType::U8, 1, "u8", "U8", "ByteStorage"},
    {DType::Bool, 1, "bool", "BOOL", "BoolStorage"},
    {DType::F8E4M3, 1, "f8e4m3", "F8_E4M3", "Float8_e4m3fnStorage"},
    {DType::F8E5M2, 1, "f8e5m2", "F8_E5M2", "Float8_e5m2Storage"},
};

const DTypeRow & row(DType dt) {
    for (const auto & r : k_rows) {
        if (r.dt == dt) return r;
    }
    fail("internal: unknown dtype code ", int(dt));
}
}  // namespace

size_t dtype_size(DType dt) { return row(dt).size; }
const char * dtype_name(DType dt) { return row(dt).name; }
const char * dtype_safetensors_name(DType dt) { return row(dt).st_name; }
const char * dtype_torch_storage_name(DType dt) { return row(dt).torch_storage; }

DType dtype_from_name(const std::string & name, const std::string & what) {
    struct Alias {
        const char * name;
        DType dt;
    };
    static const Alias aliases[] = {
        {"f64", DType::F64},      {"float64", DType::F64}, {"double", DType::F64},  {"f32", DType::F32},
        {"fp32", DType::F32},     {"float32", DType::F32}, {"float", DType::F32},   {"f16", DType::F16},
        {"fp16", DType::F16},     {"float16", DType::F16}, {"half", DType::F16},    {"bf16", DType::BF16},
        {"bfloat16", DType::BF16}, {"i64", DType::I64},    {"int64", DType::I64},   {"i32", DType::I32},
        {"int32", DType::I32},    {"i16", DType::I16},     {"int16", DType::I16},   {"i8", DType::I8},
        {"int8", DType::I8},      {"u8", DType::U8},       {"uint8", DType::U8},    {"bool", DType::Bool},
    };
    for (const auto & a : aliases) {
        if (name == a.name) return a.dt;
    }
    fail(what, ": unknown dtype '", name, "' (expected one of f32, f16, bf16, f64, i64, i32, i16, i8, u8, bool)");
}

namespace {
bool find_by(const char * const DTypeRow::*column, const std::string & name, DType & out) {
    for (const auto & r : k_rows) {
        if (name == r.*column) {
            out = r.dt;
            return true;
        }
    }
    return false;
}
}  // namespace

bool dtype_from_safetensors(const std::string & name, DType & out) { return find_by(&DTypeRow::st_name, name, out); }
bool dtype_from_torch_storage(const std::string & name, DType & out) {
    return find_by(&DTypeRow::torch_storage, name, out);
}

}  // namespace visionllm
