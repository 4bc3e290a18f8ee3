// bindings.cpp - the Python module puffjax._envs (nanobind).
//
// It exposes the C vector layer (vecenv.h) over NumPy buffers that Python
// allocates: the C code writes straight into them. Stepping runs with the
// GIL released. Python-facing checks (options, buffer shapes, actions) raise
// clear exceptions here; the hot loop stays in C.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "vecenv.h"

namespace nb = nanobind;
using Array = nb::ndarray<nb::numpy, nb::device::cpu>;

namespace {

const EnvType* find_type(const std::string& name) {
    const EnvType* type = vec_find_type(name.c_str());
    if (type == nullptr) {
        std::string known;
        for (int i = 0; i < vec_num_types(); i++) known += std::string(i ? ", " : "") + vec_type_at(i)->name;
        throw nb::value_error(("unknown environment '" + name + "'; expected one of: " + known).c_str());
    }
    return type;
}

// A registered name, or the address of an EnvType (an out-of-tree environment's shared
// library, loaded by puffjax/envs/custom_c.py, which checked its PUFFJAX_ENV_ABI).
const EnvType* type_of(nb::handle what) {
    if (nb::isinstance<nb::str>(what)) return find_type(nb::cast<std::string>(what));
    if (nb::isinstance<nb::int_>(what)) {
        uintptr_t address = nb::cast<uintptr_t>(what);
        if (address == 0) throw nb::value_error("EnvType address is NULL");
        return reinterpret_cast<const EnvType*>(address);
    }
    throw nb::type_error("an environment is a registered name (str) or an EnvType address (int)");
}

std::string option_names(const EnvType* type) {
    std::string s;
    for (int i = 0; i < type->num_options; i++) s += std::string(i ? ", " : "") + type->options[i].name;
    return s.empty() ? "(none)" : s;
}

std::string number(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// Defaults overridden by the user's options, each checked for name, type and range.
std::vector<double> resolve_options(const EnvType* type, const nb::dict& given) {
    std::vector<double> values(ENV_MAX_OPTIONS, 0.0);
    for (int i = 0; i < type->num_options; i++) values[i] = type->options[i].default_value;
    for (auto [key, value] : given) {
        if (!nb::isinstance<nb::str>(key)) throw nb::type_error("option names must be strings");
        std::string name = nb::cast<std::string>(key);
        int k = 0;
        while (k < type->num_options && name != type->options[k].name) k++;
        if (k == type->num_options)
            throw nb::type_error(("unknown option '" + name + "' for environment '" + type->name +
                                  "'; expected one of: " + option_names(type))
                                     .c_str());
        const EnvOption& opt = type->options[k];
        std::string range = "[" + number(opt.min_value) + ", " + number(opt.max_value) + "]";
        double v;
        if (opt.is_int) {
            // Accept Python ints, bools and NumPy integers (anything with __index__).
            PyObject* index = PyNumber_Index(value.ptr());
            if (index == nullptr) {
                PyErr_Clear();
                throw nb::type_error(("option '" + name + "' of '" + type->name + "' must be an integer in " +
                                      range + ", got " + nb::cast<std::string>(nb::repr(value)))
                                         .c_str());
            }
            int overflow = 0;
            long long iv = PyLong_AsLongLongAndOverflow(index, &overflow);
            Py_DECREF(index);
            v = overflow ? (overflow > 0 ? 1e300 : -1e300) : (double)iv;
        } else {
            if (!PyNumber_Check(value.ptr()) || PyBool_Check(value.ptr()))
                throw nb::type_error(("option '" + name + "' of '" + type->name + "' must be a number in " + range)
                                         .c_str());
            v = nb::cast<double>(value);
        }
        if (!(v >= opt.min_value && v <= opt.max_value))
            throw nb::value_error(("option '" + name + "' of '" + type->name + "' must be in " + range + ", got " +
                                  nb::cast<std::string>(nb::repr(value)))
                                     .c_str());
        values[k] = v;
    }
    return values;
}

// A new float32 NumPy array of the observation's shape, which Python owns.
nb::object obs_array(const EnvShape& s, float*& data) {
    data = new float[(size_t)s.obs_size];
    nb::capsule owner(data, [](void* p) noexcept { delete[] (float*)p; });
    size_t shape[2] = {(size_t)s.obs_dims[0], (size_t)s.obs_dims[1]};
    return nb::ndarray<nb::numpy, float>(data, (size_t)s.obs_ndim, shape, owner).cast();
}

nb::dict describe(const EnvType* type, const std::vector<double>& options) {
    EnvShape s = vec_type_shape(type, options.data());
    nb::dict d;
    d["name"] = type->name;
    nb::dict opts;
    for (int i = 0; i < type->num_options; i++) {
        if (type->options[i].is_int) opts[type->options[i].name] = (long long)options[i];
        else opts[type->options[i].name] = options[i];
    }
    d["options"] = opts;
    d["obs_shape"] = s.obs_ndim == 1 ? nb::make_tuple(s.obs_dims[0]) : nb::make_tuple(s.obs_dims[0], s.obs_dims[1]);
    d["obs_dtype"] = s.obs_is_uint8 ? "uint8" : "float32";
    float *low, *high;
    d["obs_low"] = obs_array(s, low);  // float32, whatever obs_dtype is
    d["obs_high"] = obs_array(s, high);
    vec_obs_bounds(&s, low, high);
    d["action_n"] = s.action_n;
    d["action_dim"] = s.action_dim;
    d["render_shape"] = nb::make_tuple(s.render_height, s.render_width, 3);
    d["num_agents"] = s.num_agents;
    nb::list logs;
    for (int i = 0; i < EPISODE_LOG_FIELDS; i++) logs.append(EPISODE_LOG_NAMES[i]);
    d["log_names"] = logs;
    nb::dict help;
    for (int i = 0; i < type->num_options; i++) help[type->options[i].name] = type->options[i].help;
    d["option_help"] = help;
    return d;
}

// Check one buffer: C-contiguous NumPy array of the expected dtype and shape.
void check_buffer(const char* what, const Array& a, nb::dlpack::dtype dtype, const char* dtype_name,
                  const std::vector<size_t>& shape) {
    std::string expected = "(";
    for (size_t i = 0; i < shape.size(); i++) expected += (i ? ", " : "") + std::to_string(shape[i]);
    expected += shape.size() == 1 ? ",)" : ")";
    bool ok = a.dtype() == dtype && a.ndim() == shape.size();
    for (size_t i = 0; ok && i < shape.size(); i++) ok = a.shape(i) == shape[i];
    // C order: each stride (in elements) equals the product of later dims.
    int64_t expect_stride = 1;
    for (size_t i = shape.size(); ok && i-- > 0;) {
        if (shape[i] > 1 && a.stride(i) != expect_stride) ok = false;
        expect_stride *= (int64_t)shape[i];
    }
    if (!ok)
        throw nb::value_error((std::string(what) + " must be a C-contiguous " + dtype_name + " array of shape " +
                               expected)
                                  .c_str());
}

struct PyVecEnv {
    VecEnv* vec = nullptr;
    const EnvType* type = nullptr;
    EnvShape shape{};
    int num_envs = 0;
    int num_rows = 0;  // num_envs * shape.num_agents
    // References that keep the NumPy buffers alive while C points into them.
    Array observations, actions, rewards, terminals, truncations;
    std::atomic<int> busy{0};

    // Only one call at a time may touch the C object (steps release the GIL).
    struct Guard {
        PyVecEnv* env;
        explicit Guard(PyVecEnv* e, bool need_open = true) : env(e) {
            int expected = 0;
            if (!env->busy.compare_exchange_strong(expected, 1))
                throw std::runtime_error("this vector environment is already in use by another thread");
            if (need_open && env->vec == nullptr) {
                env->busy.store(0);
                throw std::runtime_error("this vector environment is closed");
            }
        }
        ~Guard() { env->busy.store(0); }
    };

    ~PyVecEnv() {
        if (vec != nullptr) vec_destroy(vec);
    }

    void check_index(int i) const {
        if (i < 0 || i >= num_envs)
            throw nb::index_error(("environment index " + std::to_string(i) + " out of range; expected 0 <= i < " +
                                   std::to_string(num_envs))
                                      .c_str());
    }

    const EnvField* field(const std::string& name) const {
        const EnvField* f = vec_find_field(vec, name.c_str());
        if (f == nullptr) {
            std::string known;
            for (int k = 0; k < type->num_fields; k++) known += std::string(k ? ", " : "") + type->fields[k].name;
            if (known.empty()) known = "(none)";
            throw nb::key_error(("no field '" + name + "' in " + type->name + "; fields: " + known).c_str());
        }
        return f;
    }
};

void vecenv_init(PyVecEnv* self, nb::object name, nb::dict options, Array observations, Array actions,
                 Array rewards, Array terminals, Array truncations, uint64_t seed, int threads) {
    new (self) PyVecEnv();
    const EnvType* type = type_of(name);
    std::vector<double> opts = resolve_options(type, options);
    EnvShape s = vec_type_shape(type, opts.data());
    if (rewards.ndim() != 1 || rewards.shape(0) < 1)
        throw nb::value_error("rewards must be a 1-D float32 array with one entry per agent (num_envs >= 1)");
    size_t n = rewards.shape(0);  // rows: environments x agents
    if (n > (size_t)(1 << 26)) throw nb::value_error("num_envs x agents must be at most 67108864");
    size_t agents = (size_t)s.num_agents;
    if (n % agents != 0)
        throw nb::value_error(("rewards has " + std::to_string(n) + " rows, not a multiple of the " +
                               std::to_string(agents) + " agents of each '" + type->name + "' environment")
                                  .c_str());
    if (threads < 1 || threads > 1024)
        throw nb::value_error(("threads must be an integer in [1, 1024], got " + std::to_string(threads)).c_str());
    std::vector<size_t> obs_shape = {n, (size_t)s.obs_dims[0]};
    if (s.obs_ndim == 2) obs_shape.push_back((size_t)s.obs_dims[1]);
    check_buffer("observations", observations, s.obs_is_uint8 ? nb::dtype<uint8_t>() : nb::dtype<float>(),
                 s.obs_is_uint8 ? "uint8" : "float32", obs_shape);
    if (s.action_n > 0) check_buffer("actions", actions, nb::dtype<int32_t>(), "int32", {n});
    else check_buffer("actions", actions, nb::dtype<float>(), "float32", {n, (size_t)s.action_dim});
    check_buffer("rewards", rewards, nb::dtype<float>(), "float32", {n});
    check_buffer("terminals", terminals, nb::dtype<bool>(), "bool", {n});
    check_buffer("truncations", truncations, nb::dtype<bool>(), "bool", {n});

    VecEnv* vec = vec_create(type, opts.data(), (int)(n / agents), threads, observations.data(), actions.data(),
                             (float*)rewards.data(), (unsigned char*)terminals.data(),
                             (unsigned char*)truncations.data(), seed);
    if (vec == nullptr) throw std::bad_alloc();
    self->vec = vec;
    self->type = type;
    self->shape = s;
    self->num_envs = (int)(n / agents);
    self->num_rows = (int)n;
    self->observations = observations;
    self->actions = actions;
    self->rewards = rewards;
    self->terminals = terminals;
    self->truncations = truncations;
}

void vecenv_step(PyVecEnv* self, int start, int end) {
    PyVecEnv::Guard guard(self);
    if (end < 0) end = self->num_envs;
    if (start < 0 || start > end || end > self->num_envs)
        throw nb::index_error(("step range [" + std::to_string(start) + ", " + std::to_string(end) +
                               ") is not within [0, " + std::to_string(self->num_envs) + "]")
                                  .c_str());
    double bad = 0.0;
    int index;
    {
        nb::gil_scoped_release release;
        int k = self->shape.num_agents;  // each environment owns k consecutive action rows
        index = vec_find_bad_action(self->vec, start * k, end * k, &bad);
        if (index < 0) vec_step_range(self->vec, start, end);
    }
    if (index >= 0) {
        std::string where = std::string(self->type->name) + ": actions[" + std::to_string(index) + "] = ";
        if (self->shape.action_n > 0)
            throw nb::value_error((where + std::to_string((long long)bad) + " is out of range; expected an integer in [0, " +
                                   std::to_string(self->shape.action_n) + ") for Discrete(" +
                                   std::to_string(self->shape.action_n) + ")")
                                      .c_str());
        throw nb::value_error((where + number(bad) +
                               " is not finite; expected finite float32 values (clipped to [-1, 1])")
                                  .c_str());
    }
}

void vecenv_reset(PyVecEnv* self, nb::object seed) {
    PyVecEnv::Guard guard(self);
    if (seed.is_none()) {
        vec_reset(self->vec, 0, 0);
    } else {
        uint64_t s = nb::cast<uint64_t>(seed);
        vec_reset(self->vec, 1, s);
    }
}

nb::dict vecenv_log(PyVecEnv* self) {
    PyVecEnv::Guard guard(self);
    double sums[EPISODE_LOG_FIELDS + 1];
    vec_take_log(self->vec, sums);
    nb::dict d;
    int k = EPISODE_LOG_FIELDS;
    double n = sums[k];
    if (n <= 0.0) return d;
    for (int i = 0; i < k; i++) d[EPISODE_LOG_NAMES[i]] = sums[i] / n;
    d["n"] = (long long)n;
    return d;
}

nb::ndarray<nb::numpy, uint8_t, nb::ndim<3>> vecenv_render(PyVecEnv* self, int i) {
    PyVecEnv::Guard guard(self);
    self->check_index(i);
    size_t h = (size_t)self->shape.render_height, w = (size_t)self->shape.render_width;
    uint8_t* data = new uint8_t[h * w * 3];
    nb::capsule owner(data, [](void* p) noexcept { delete[] (uint8_t*)p; });
    vec_render(self->vec, i, data);
    return nb::ndarray<nb::numpy, uint8_t, nb::ndim<3>>(data, {h, w, 3}, owner);
}

nb::bytes vecenv_get_state(PyVecEnv* self) {
    PyVecEnv::Guard guard(self);
    std::string data(vec_state_size(self->vec), '\0');
    vec_get_state(self->vec, (unsigned char*)data.data());
    return nb::bytes(data.data(), data.size());
}

void vecenv_set_state(PyVecEnv* self, nb::bytes data) {
    PyVecEnv::Guard guard(self);
    size_t expected = vec_state_size(self->vec);
    if (data.size() != expected)
        throw nb::value_error(("environment state has " + std::to_string(data.size()) + " bytes, expected " +
                               std::to_string(expected) + " (" + std::to_string(self->num_envs) + " " +
                               self->type->name + " environments of this build)")
                                  .c_str());
    const char* member = nullptr;
    int bad = vec_set_state(self->vec, (const unsigned char*)data.c_str(), &member);
    if (bad == -2) throw std::bad_alloc();
    if (bad >= 0)
        throw nb::value_error(("environment state: " + std::string(self->type->name) + " environment " +
                               std::to_string(bad) + " has " + member +
                               " out of its bounds (a damaged or foreign snapshot); nothing was restored")
                                  .c_str());
}

void vecenv_close(PyVecEnv* self) {
    PyVecEnv::Guard guard(self, false);
    if (self->vec == nullptr) return;
    VecEnv* vec = self->vec;
    self->vec = nullptr;
    {
        nb::gil_scoped_release release;  // joins worker threads
        vec_destroy(vec);
    }
    self->observations = Array();
    self->actions = Array();
    self->rewards = Array();
    self->terminals = Array();
    self->truncations = Array();
}

double vecenv_get_field(PyVecEnv* self, int i, const std::string& name, int element) {
    PyVecEnv::Guard guard(self);
    self->check_index(i);
    const EnvField* f = self->field(name);
    if (element < 0 || element >= f->count) throw nb::index_error("element index out of range");
    double v = 0.0;
    vec_get_field(self->vec, i, name.c_str(), element, &v);
    return v;
}

void vecenv_set_field(PyVecEnv* self, int i, const std::string& name, double value, int element) {
    PyVecEnv::Guard guard(self);
    self->check_index(i);
    const EnvField* f = self->field(name);
    if (element < 0 || element >= f->count) throw nb::index_error("element index out of range");
    double lo = -3.0e38, hi = 3.0e38;
    if (f->kind == FIELD_INT) lo = -2147483648.0, hi = 2147483647.0;
    if (f->kind == FIELD_BYTES) lo = 0.0, hi = 255.0;
    if (!std::isfinite(value) || value < lo || value > hi)
        throw nb::value_error(("field '" + name + "' needs a finite value in [" + number(lo) + ", " + number(hi) + "]")
                                  .c_str());
    vec_set_field(self->vec, i, name.c_str(), element, value);
}

}  // namespace

NB_MODULE(_envs, m) {
    m.doc() = "puffjax C environments: vectorized, zero-copy over NumPy buffers";

    m.def("names", []() {
        nb::list l;
        for (int i = 0; i < vec_num_types(); i++) l.append(vec_type_at(i)->name);
        return l;
    }, "Names of the registered C environments.");

    m.attr("ABI") = PUFFJAX_ENV_ABI;

    m.def("env_info", [](nb::object name, nb::dict options) {
        const EnvType* type = type_of(name);
        return describe(type, resolve_options(type, options));
    }, nb::arg("name"), nb::arg("options") = nb::dict(),
          "Validate options and describe the environment: shapes, dtypes, observation bounds, log fields.");

    nb::class_<PyVecEnv>(m, "VecEnv", "N C environments stepping in place over NumPy buffers")
        .def("__init__", &vecenv_init, nb::arg("name"), nb::arg("options"), nb::arg("observations").noconvert(),
             nb::arg("actions").noconvert(), nb::arg("rewards").noconvert(), nb::arg("terminals").noconvert(),
             nb::arg("truncations").noconvert(), nb::arg("seed") = 0, nb::arg("threads") = 1)
        .def("step", &vecenv_step, nb::arg("start") = 0, nb::arg("end") = -1,
             "Check the actions of environments [start, end) (default: all; their agents' rows), then step "
             "them (GIL released).")
        .def("reset", &vecenv_reset, nb::arg("seed") = nb::none(),
             "Start new episodes; with a seed, environment i's RNG restarts from (seed, i).")
        .def("log", &vecenv_log, "Means of the log fields over episodes finished since the last call, plus n.")
        .def("render", &vecenv_render, nb::arg("i"), "Environment i as an (H, W, 3) uint8 image.")
        .def("get_state", &vecenv_get_state, "Snapshot of every environment's state, as bytes.")
        .def("set_state", &vecenv_set_state, nb::arg("state"),
             "Restore a snapshot from get_state after checking every environment in it; if one is invalid, "
             "ValueError names it and its member, and nothing changes.")
        .def("close", &vecenv_close)
        .def("get_field", &vecenv_get_field, nb::arg("i"), nb::arg("name"), nb::arg("element") = 0,
             "Test hook: read a named state field of environment i.")
        .def("set_field", &vecenv_set_field, nb::arg("i"), nb::arg("name"), nb::arg("value"), nb::arg("element") = 0,
             "Test hook: write a named state field of environment i and refresh its observation.")
        .def_prop_ro("num_envs", [](const PyVecEnv& e) { return e.num_envs; })
        .def_prop_ro("num_agents", [](const PyVecEnv& e) { return e.num_rows; })
        .def_prop_ro("num_threads", [](const PyVecEnv& e) { return e.vec ? vec_num_threads(e.vec) : 0; })
        .def_prop_ro("closed", [](const PyVecEnv& e) { return e.vec == nullptr; })
        .def_prop_ro("name", [](const PyVecEnv& e) { return std::string(e.type->name); });
}
