#pragma once
// AnyQuantizer: a value-semantic, type-erased VectorQuantizer, for drivers and config files that
// choose a method at run time (see quant/factory.hpp). Dispatch is virtual once per batch call,
// never per element: the inner loops stay inside the concrete method.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "optiq/core/error.hpp"
#include "optiq/quant/concepts.hpp"
#include "optiq/quant/encoded.hpp"

namespace optiq {

class AnyQuantizer {
public:
    AnyQuantizer() = default;

    template <VectorQuantizer Q>
    explicit AnyQuantizer(Q q, std::string spec = {})
        : self_(std::make_shared<const Model<Q>>(std::move(q))), spec_(std::move(spec)) {}

    [[nodiscard]] explicit operator bool() const noexcept { return self_ != nullptr; }
    [[nodiscard]] std::size_t dim() const { return get().dim(); }
    [[nodiscard]] int bits() const { return get().bits(); }
    [[nodiscard]] std::string name() const { return get().name(); }
    /// The factory string this quantizer was made from ("tq_mse:4"), if any.
    [[nodiscard]] const std::string& spec() const noexcept { return spec_; }

    [[nodiscard]] EncodedBatch encode(std::span<const float> x) const { return get().encode(x); }
    void decode(const EncodedBatch& b, std::span<float> out) const { get().decode(b, out); }
    /// Estimates <query, x_i> for every vector of the batch, from the codes.
    void inner_products(std::span<const float> query, const EncodedBatch& b, std::span<float> out) const {
        get().inner_products(query, b, out);
    }

    /// The concrete method, when its type is known (nullptr otherwise).
    template <VectorQuantizer Q>
    [[nodiscard]] const Q* target() const noexcept {
        const auto* m = dynamic_cast<const Model<Q>*>(self_.get());
        return m ? &m->q : nullptr;
    }

private:
    struct Concept {
        virtual ~Concept() = default;
        virtual std::size_t dim() const = 0;
        virtual int bits() const = 0;
        virtual std::string name() const = 0;
        virtual EncodedBatch encode(std::span<const float> x) const = 0;
        virtual void decode(const EncodedBatch& b, std::span<float> out) const = 0;
        virtual void inner_products(std::span<const float> query, const EncodedBatch& b, std::span<float> out) const = 0;
    };
    template <class Q>
    struct Model final : Concept {
        explicit Model(Q x) : q(std::move(x)) {}
        std::size_t dim() const override { return q.dim(); }
        int bits() const override { return q.bits(); }
        std::string name() const override { return q.name(); }
        EncodedBatch encode(std::span<const float> x) const override { return q.encode(x); }
        void decode(const EncodedBatch& b, std::span<float> out) const override { q.decode(b, out); }
        void inner_products(std::span<const float> query, const EncodedBatch& b, std::span<float> out) const override {
            const auto qs = q.prepare_query(query);
            q.inner_products(qs, b, out);
        }
        Q q;
    };

    const Concept& get() const {
        if (!self_) detail::fail<config_error>("AnyQuantizer: empty (no method was assigned)");
        return *self_;
    }

    std::shared_ptr<const Concept> self_;
    std::string spec_;
};

}  // namespace optiq
