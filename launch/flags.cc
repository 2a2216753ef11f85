#include "launch/flags.h"

#define SHARDREC_FLAG(type, name, value, help) DEFINE_##type(name, value, help)
#include "launch/flags.def"
#undef SHARDREC_FLAG
