#pragma once
// Options structs read like LibTorch's: TrainerOptions().max_epochs(5).seed(1)
#define J2V_ARG(T, name)                                  \
 public:                                                  \
  auto name(const T& new_value)->decltype(*this) {        \
    this->name##_ = new_value;                            \
    return *this;                                         \
  }                                                       \
  const T& name() const noexcept { return this->name##_; } \
                                                          \
 private:                                                 \
  T name##_
