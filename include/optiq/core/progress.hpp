#pragma once
// A progress bar with rate and ETA for long work, drawn on a stream (stderr by default).
// Redraws at most every 100 ms; when the stream is not a terminal (CI logs) it prints a line
// at each 10% step instead of carriage-return redraws.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

namespace optiq {

class ProgressBar {
public:
    using clock = std::chrono::steady_clock;

    ProgressBar(std::string label, std::size_t total, std::FILE* out = stderr, bool enabled = true)
        : label_(std::move(label)), total_(total), out_(out), enabled_(enabled && out != nullptr),
          start_(clock::now()), last_draw_(start_) {
#if defined(__unix__) || defined(__APPLE__)
        tty_ = enabled_ && isatty(fileno(out_)) != 0;
#endif
    }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;
    ~ProgressBar() { finish(); }

    void set_label(std::string label) { label_ = std::move(label); }

    void advance(std::size_t n = 1) {
        done_ = std::min(total_, done_ + n);
        const auto now = clock::now();
        if (!enabled_) return;
        if (tty_) {
            if (now - last_draw_ >= std::chrono::milliseconds(100) || done_ == total_) draw(now);
        } else {
            const std::size_t decile = total_ == 0 ? 10 : done_ * 10 / total_;
            if (decile > last_decile_) {
                last_decile_ = decile;
                draw(now);
            }
        }
    }

    void finish() {
        if (finished_) return;
        finished_ = true;
        if (!enabled_) return;
        if (tty_) {
            draw(clock::now());
            std::fputc('\n', out_);
        }
        std::fflush(out_);
    }

    /// "1m05s" style duration.
    [[nodiscard]] static std::string format_seconds(double s) {
        char buf[32];
        if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
        else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
        else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) % 3600) / 60);
        return buf;
    }

private:
    void draw(clock::time_point now) {
        last_draw_ = now;
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const double frac = total_ == 0 ? 1.0 : static_cast<double>(done_) / static_cast<double>(total_);
        const double eta = done_ == 0 ? 0.0 : elapsed * (1.0 - frac) / frac;
        constexpr int width = 30;
        const int filled = static_cast<int>(frac * width);
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.resize(width, '.');
        std::fprintf(out_, "%s%s [%s] %3d%% %zu/%zu elapsed %s eta %s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
                     static_cast<int>(frac * 100.0), done_, total_, format_seconds(elapsed).c_str(),
                     format_seconds(eta).c_str(), tty_ ? "\x1b[K" : "\n");
        std::fflush(out_);
    }

    std::string label_;
    std::size_t total_;
    std::FILE* out_;
    bool enabled_;
    bool tty_ = false;
    bool finished_ = false;
    std::size_t done_ = 0, last_decile_ = 0;
    clock::time_point start_, last_draw_;
};

}  // namespace optiq
