// Row modules register themselves on import; the order here is the table's order.
import './peak.ts';
import './matmul.ts';
import './matmul-f16.ts';
import './dispatch.ts';
import './step-dispatches.ts';
import './optimizers.ts';
import './quant.ts';
import './finetune-methods.ts';
import './gradient-checkpointing.ts';
import './linear-cross-entropy.ts';
import './attention.ts';
import './smollm2-lora.ts';
import './load.ts';
import './gpt2-qlora.ts';
import './qwen-qlora.ts';
