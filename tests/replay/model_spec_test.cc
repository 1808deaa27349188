// ModelSpec: presets, dimension overrides, model files, the formula and the JSON of a model.
#include "kvbm/replay/model_spec.h"

#include <gtest/gtest.h>

#include <string>

namespace kvbm {
namespace {

TEST(ModelSpec, PresetsGiveTheRealBlock) {
  auto llama = model_spec_preset("llama-3.1-8b", 512);  // names match without regard to case
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(llama->name, "Llama-3.1-8B");
  EXPECT_EQ(llama->bytes_per_block(), 64ull << 20);
  EXPECT_EQ(llama->formula(), "32 layers × 2 (K, V) × 8 KV heads × 128 head dim × 2 B × 512 tokens = 64.0 MiB");
  auto ds = model_spec_preset("DeepSeek-V3", 512);
  ASSERT_TRUE(ds.ok());
  EXPECT_EQ(ds->shape, ModelSpec::Shape::kLatent);
  EXPECT_EQ(ds->geometry.outer_dim, 1u);
  EXPECT_EQ(ds->bytes_per_block(), 61ull * 512 * 576 * 2);
  EXPECT_NE(ds->to_json().find("\"latent_dim\":576"), std::string::npos) << ds->to_json();
  auto unknown = model_spec_preset("GPT-9", 16);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("Llama-3.1-70B"), std::string::npos);
}

TEST(ModelSpec, DimensionsOverAPresetOrACustomModel) {
  auto llama = model_spec_preset("Llama-3.1-8B", 16);
  ASSERT_TRUE(llama.ok());
  auto fp8 = apply_model_dims(*llama, ModelDims{.dtype_bytes = 1}, 16, true);
  ASSERT_TRUE(fp8.ok()) << fp8.status();
  EXPECT_EQ(fp8->bytes_per_block(), llama->bytes_per_block() / 2);
  auto mla = apply_model_dims(*llama, ModelDims{.latent_dim = 512}, 16, true);
  ASSERT_TRUE(mla.ok());
  EXPECT_EQ(mla->geometry.outer_dim, 1u);
  EXPECT_EQ(mla->bytes_per_block(), 32ull * 16 * 512 * 2);
  auto custom = apply_model_dims(std::nullopt, ModelDims{.num_layers = 2, .num_kv_heads = 4, .head_dim = 64}, 16, true);
  ASSERT_TRUE(custom.ok());
  EXPECT_EQ(custom->bytes_per_block(), 2ull * 2 * 16 * 256 * 2);

  auto no_heads = apply_model_dims(std::nullopt, ModelDims{.num_layers = 2}, 16, true);
  ASSERT_FALSE(no_heads.ok());
  EXPECT_NE(no_heads.status().message().find("--kv-heads"), std::string::npos);
  auto both = apply_model_dims(*llama, ModelDims{.num_kv_heads = 2, .latent_dim = 8}, 16, true);
  ASSERT_FALSE(both.ok());
  auto range = apply_model_dims(*llama, ModelDims{.num_layers = 5000}, 16, false);
  ASSERT_FALSE(range.ok());
  EXPECT_NE(range.status().message().find("num_layers must be in [1, 1024], got 5000"), std::string::npos)
      << range.status();
  auto page = apply_model_dims(*llama, ModelDims{.page_size = 32}, 16, false);
  ASSERT_FALSE(page.ok());
}

TEST(ModelSpec, BlockBytesOnly) {
  auto m = ModelSpec::from_block_bytes(4096, 512);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->bytes_per_block(), 4096u);
  EXPECT_EQ(m->geometry.page_size, 512u);
  EXPECT_EQ(m->to_json().find("num_layers"), std::string::npos) << "a stand-in geometry is not shown";
  EXPECT_FALSE(ModelSpec::from_block_bytes(4000, 512).ok());
  auto big = ModelSpec::from_block_bytes(1ull << 30, 512);  // 1 GiB: beyond inner_dim alone, dtype grows
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->bytes_per_block(), 1ull << 30);
}

TEST(ModelSpec, ModelFiles) {
  auto d = parse_model_file(
      "# fp8 Llama\n[model]\nname = \"Llama # fp8\"  # a comment\nnum_layers = 32\n  num_kv_heads=8\n"
      "head_dim = 128\ndtype_bytes = 1\npage_size = 16\n\n");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d->name, "Llama # fp8");
  EXPECT_EQ(*d->num_layers, 32u);
  EXPECT_EQ(*d->page_size, 16u);
  EXPECT_FALSE(d->latent_dim.has_value());
  for (const char* bad : {"num_layers = -1\n", "num_layers = 1.5\n", "heads = 8\n", "num_layers\n", "name = llama\n",
                          "num_layers = 1\nnum_layers = 2\n", "num_layers = 1\n[model]\n", "[g1]\n",
                          "num_layers = 99999999999\n", "num_layers = 0\n"}) {
    auto r = parse_model_file(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message().rfind("line ", 0), 0u) << r.status();
  }
}

}  // namespace
}  // namespace kvbm
