#include "runtime/chat.h"

namespace gemma {

std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string format_user_turn(const std::string& message, const std::string& system, bool first_turn) {
  std::string content = trim(message);
  if (first_turn && !trim(system).empty()) content = trim(system) + "\n\n" + content;
  return std::string(first_turn ? "" : "<end_of_turn>\n") + "<start_of_turn>user\n" + content + "<end_of_turn>\n<start_of_turn>model\n";
}

}  // namespace gemma
