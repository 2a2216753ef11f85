// The flags of `shardrec` (listed once, in flags.def), declared for the commands that read them.
#pragma once

#include <gflags/gflags.h>

#define SHARDREC_FLAG(type, name, value, help) DECLARE_##type(name)
#include "launch/flags.def"
#undef SHARDREC_FLAG
