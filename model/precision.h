// Mixed precision for the towers: inside an AutocastScope, LibTorch's autocast runs matrix products
// (linear layers, attention) in bfloat16 on the given device type and keeps reductions such as
// layer norm and softmax in float32. The scope is thread-local (one per rank thread).
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace shardrec {

// "float32" or "bfloat16"; anything else is a UserError naming `flag`.
bool IsBfloat16(const std::string& precision, const std::string& flag = "--precision");

class AutocastScope {
 public:
  // Does nothing unless `enabled`.
  AutocastScope(bool enabled, c10::DeviceType device);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  c10::DeviceType device_;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Float;
};

}  // namespace shardrec
