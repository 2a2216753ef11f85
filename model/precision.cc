#include "model/precision.h"

#include <ATen/autocast_mode.h>

#include "common/error.h"

namespace shardrec {

bool IsBfloat16(const std::string& precision, const std::string& flag) {
  if (precision == "float32") return false;
  if (precision == "bfloat16") return true;
  Fail(flag, ": expected float32 or bfloat16, got '", precision, "'");
}

AutocastScope::AutocastScope(bool enabled, c10::DeviceType device) : enabled_(enabled), device_(device) {
  if (!enabled_) return;
  was_enabled_ = at::autocast::is_autocast_enabled(device_);
  was_dtype_ = at::autocast::get_autocast_dtype(device_);
  at::autocast::set_autocast_dtype(device_, at::kBFloat16);
  at::autocast::set_autocast_enabled(device_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  // Leaving the outermost scope drops the casted-weight cache (weights change every step).
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, was_dtype_);
}

}  // namespace shardrec
