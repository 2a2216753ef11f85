// Run configuration: flat YAML files whose keys are flag names ("epochs: 30", "max-len: 200"),
// applied to every flag the command line did not set. Unknown keys are rejected by name.
#pragma once

#include <string>
#include <vector>


namespace shardrec::cli {

// Applies `path` to the flags in `allowed` that are still at their defaults. Keys outside `allowed`
// are a UserError naming file and line. With `only`, keys in `allowed` but not in `only` are
// accepted and ignored (e.g. reading a run's model keys out of its full config.yaml).
void ApplyConfigFile(const std::string& path, const std::vector<std::string>& allowed,
                     const std::vector<std::string>& only = {});
// ApplyConfigFile for a config held in memory (a built-in one); `name` stands for the file in
// messages.
void ApplyConfigText(const std::string& text, const std::string& name, const std::vector<std::string>& allowed);
// ApplyConfigFile for a run's own RUN/config.yaml: a model key the run predates (written by an
// older version) takes the value that rebuilds the model it trained, not today's default.
void ApplyRunConfigFile(const std::string& path, const std::vector<std::string>& allowed,
                        const std::vector<std::string>& only = {});
// "key: value" lines of the current values of `keys`, for RUN/config.yaml.
std::string EffectiveConfig(const std::vector<std::string>& keys);

}  // namespace shardrec::cli
