// Simulation: boards and CAN buses on one virtual clock, run in deterministic lock-step.
#include "twin/board.hpp"

#include "twin/can/bus.hpp"

#include <algorithm>
#include <cstdio>

namespace rtcanboot::twin {

Simulation::Simulation() {
  reporter_.sim = this;
}

Simulation::~Simulation() {
  boards_.clear();
  buses_.clear();
}

void Simulation::SimReporter::report(Severity severity, const std::string& source,
                                     const std::string& message, std::uint32_t pc) {
  Report r{sim->clock_.now(), severity, source, message, pc};
  if (sink) {
    sink(r);
  } else if (severity != Severity::kInfo) {
    std::fprintf(stderr, "[bus %s] %.6f s %s: %s\n",
                 severity == Severity::kFault ? "FAULT" : "warning",
                 static_cast<double>(r.time) / 1e9, source.c_str(), message.c_str());
  }
}

can::Bus& Simulation::add_bus(std::uint32_t bitrate, const std::string& name) {
  buses_.push_back(std::make_unique<can::Bus>(clock_, reporter_, bitrate, name));
  return *buses_.back();
}

Board& Simulation::add_board(BoardConfig config) {
  boards_.push_back(std::make_unique<Board>(*this, std::move(config)));
  return *boards_.back();
}

void Simulation::step(Nanos t) {
  const Nanos now = clock_.queue_time();
  const Nanos target = std::min({t, std::max(clock_.next_event_time(), now + 1), now + quantum});
  for (auto& b : boards_) b->run_to(target);
  // Boards may have scheduled events before `target`: run the queue only up to the first.
  clock_.advance_to(std::min(target, std::max(clock_.next_event_time(), now + 1)));
}

void Simulation::run_until(Nanos t) {
  while (clock_.queue_time() < t) step(t);
}

bool Simulation::run_until(const std::function<bool()>& done, Nanos deadline) {
  while (!done() && now() < deadline) step(deadline);
  return done();
}

}  // namespace rtcanboot::twin
