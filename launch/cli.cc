#include "launch/cli.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <set>

#include "common/error.h"
#include "common/strings.h"
#include "distributed/launch_env.h"
#include "distributed/mpi.h"

DECLARE_bool(help);
DECLARE_bool(helpshort);
DECLARE_bool(helpfull);

namespace shardrec::cli {

std::vector<Command>& Registry() {
  static std::vector<Command> commands;
  return commands;
}

namespace {

std::string Dashed(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

void PrintOverview() {
  std::cout << "shardrec: train and serve sharded recommendation recall models\n\n"
               "usage: shardrec <command> [flags]     shardrec <command> --help\n\ncommands:\n";
  auto cmds = Registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  for (const auto& c : cmds) {
    std::printf("  %-16s %s\n", c.name.c_str(), c.summary.c_str());
  }
}

void PrintHelp(const Command& c) {
  std::cout << c.summary << "\n\nusage: " << c.usage << "\n";
  if (c.flags.empty()) return;
  std::cout << "\nflags:\n";
  for (const auto& f : c.flags) {
    gflags::CommandLineFlagInfo info;
    CHECK(gflags::GetCommandLineFlagInfo(f.c_str(), &info)) << "unknown flag " << f;
    std::string head = "  --" + Dashed(info.name) + " (" + info.type + ", default '" +
                       info.default_value + "')";
    std::cout << head << "\n      " << info.description << "\n";
  }
}


// gflags reports an unknown flag or a bad value on its own and exits 1. The command line is checked
// here first, with gflags' own rules (--name=value, --name value, --bool, --nobool; "--" ends the
// flags), so such mistakes end like every other: "shardrec: error: ..." and exit 2.
void CheckFlagSyntax(const std::vector<std::string>& args) {
  // Values are checked by setting them; every flag gets its old value back on return.
  gflags::FlagSaver restore;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 2 || a[0] != '-' || std::isdigit(static_cast<unsigned char>(a[1]))) continue;
    const size_t start = a.find_first_not_of('-');
    const size_t eq = a.find('=');
    const std::string name = a.substr(start, eq == std::string::npos ? std::string::npos : eq - start);
    gflags::CommandLineFlagInfo info;
    if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) {
      const bool negated = name.rfind("no", 0) == 0 && gflags::GetCommandLineFlagInfo(name.c_str() + 2, &info) &&
                           info.type == "bool" && eq == std::string::npos;
      if (!negated) Fail("unknown flag --", Dashed(name), " (see shardrec help, or shardrec <command> --help)");
      continue;
    }
    std::string value;
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
    } else if (info.type == "bool") {
      continue;
    } else if (name == "flagfile" || name == "fromenv" || name == "tryfromenv") {
      ++i;  // gflags reads these itself
      continue;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      Fail("--", Dashed(name), " needs a value (", info.type, ")");
    }
    if (gflags::SetCommandLineOption(name.c_str(), value.c_str()).empty()) {
      Fail("--", Dashed(name), ": expected ", info.type == "double" ? "a number" : info.type == "bool" ? "true or false" : "an integer",
           " (", info.type, "), got ", Quote(value));
    }
  }
}

}  // namespace

void RejectForeignFlags(const Command& c) {
  std::set<std::string> mine(c.flags.begin(), c.flags.end());
  std::vector<gflags::CommandLineFlagInfo> all;
  gflags::GetAllFlags(&all);
  for (const auto& info : all) {
    if (info.is_default || mine.count(info.name)) continue;
    if (info.filename.find("launch/") == std::string::npos) continue;  // glog's etc.
    Fail("--", Dashed(info.name), " is not a flag of 'shardrec ", c.name, "' (see shardrec ", c.name,
         " --help)");
  }
}

namespace {

// gflags wants underscores; users type dashes (--min-rating). Rewrites flag names only.
std::vector<std::string> UnderscoredArgs(int argc, char** argv) {
  std::vector<std::string> storage(argv, argv + argc);
  for (size_t i = 1; i < storage.size(); ++i) {
    std::string& a = storage[i];
    if (a == "--") break;
    if (a.rfind("--", 0) == 0 || (a.size() > 1 && a[0] == '-' && !std::isdigit(a[1]))) {
      size_t start = a.find_first_not_of('-');
      size_t eq = a.find('=');
      for (size_t k = start; k < std::min(eq, a.size()); ++k) {
        if (a[k] == '-') a[k] = '_';
      }
      // `export` is a C++ keyword, so the flag behind --export is export_dir.
      if (a.compare(start, std::min(eq, a.size()) - start, "export") == 0) a.insert(start + 6, "_dir");
    }
  }
  return storage;
}

// The command whose name is the longest prefix of the positional words, and how many words it
// takes (nullptr: none).
std::pair<const Command*, size_t> FindCommand(const std::vector<std::string>& pos) {
  const Command* cmd = nullptr;
  size_t words = 0;
  for (const auto& c : Registry()) {
    const std::vector<std::string_view> parts = SplitText(c.name, " ");
    if (parts.size() <= pos.size() && std::equal(parts.begin(), parts.end(), pos.begin()) && parts.size() > words) {
      cmd = &c;
      words = parts.size();
    }
  }
  return {cmd, words};
}

// Runs a command and turns its errors into one message and an exit code (docs/errors.md).
int RunCommand(const Command& cmd, const std::vector<std::string>& rest) {
  try {
    if (static_cast<int>(rest.size()) < cmd.positional ||
        static_cast<int>(rest.size()) > cmd.positional + cmd.optional_positional) {
      Fail("'shardrec ", cmd.name, "' takes ", cmd.positional, " positional argument(s), got ", rest.size(), "; usage: ",
           cmd.usage);
    }
    RejectForeignFlags(cmd);
    return cmd.run(rest);
  } catch (const AgreedUserError& e) {
    // Every rank has this same error: rank 0 says it once; all exit, none is left waiting.
    if (DetectLaunchEnv().rank == 0) {
      std::cerr << "shardrec: error: " << e.what() << "\n";
      std::cerr.flush();
    }
    return 2;
  } catch (const UserError& e) {
    std::cerr << "shardrec: error: " << e.what() << "\n";
    std::cerr.flush();
    // In a multi-rank job the others may be waiting for this rank: end them all.
    if (MpiActive()) AbortJob(2);
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "shardrec: internal error: " << e.what() << "\n";
    std::cerr.flush();
    if (MpiActive()) AbortJob(3);
    return 3;
  }
}

}  // namespace

int Main(int argc, char** argv) {
  std::vector<std::string> storage = UnderscoredArgs(argc, argv);
  std::vector<char*> args;
  for (auto& s : storage) args.push_back(s.data());
  args.push_back(nullptr);
  int n = argc;
  char** v = args.data();
  gflags::SetUsageMessage("shardrec <command> [flags]; shardrec help");
  gflags::SetVersionString("0.1.0");
  try {
    CheckFlagSyntax(storage);
  } catch (const UserError& e) {
    std::cerr << "shardrec: error: " << e.what() << "\n";
    return 2;
  }
  gflags::ParseCommandLineNonHelpFlags(&n, &v, /*remove_flags=*/true);
  FLAGS_logtostderr = true;
  google::InitGoogleLogging(v[0]);

  std::vector<std::string> pos(v + 1, v + n);
  const bool help = FLAGS_help || FLAGS_helpshort || FLAGS_helpfull;
  if (pos.empty() || pos[0] == "help") {
    PrintOverview();
    return pos.empty() && !help ? 2 : 0;
  }
  const auto [cmd, words] = FindCommand(pos);
  if (cmd == nullptr) {
    std::cerr << "shardrec: error: unknown command " << Quote(pos[0] + (pos.size() > 1 ? " " + pos[1] : ""))
              << "; see shardrec help\n";
    return 2;
  }
  if (help) {
    PrintHelp(*cmd);
    return 0;
  }
  return RunCommand(*cmd, std::vector<std::string>(pos.begin() + static_cast<long>(words), pos.end()));
}

}  // namespace shardrec::cli
