// A step in JavaScript: once the order is charged, write the customer's receipt.
// It runs in its own Node child process, beside the Python steps of the same flow.
import { defineConfig, defineFunction } from '@flowhost/worker'

export const config = defineConfig({
  flow: { name: 'orders', step: 'receipt', subscribes: ['order.charged'] },
  attempts: 2,
  timeout: 10_000,
})

export default defineFunction(async (input, ctx) => {
  const { charge_id: chargeId } = input['order.charged']
  const order = await ctx.state.get('order')
  const lines = order.items.map(
    (item) => `${item.quantity} x ${item.sku} @ ${item.price.toFixed(2)}`,
  )
  const total = order.items.reduce((sum, item) => sum + item.price * item.quantity, 0)
  const receipt = { orderId: order.id, chargeId, lines, total: Number(total.toFixed(2)) }
  await ctx.state.set('receipt', receipt)
  ctx.logger.info('receipt written', { orderId: order.id, chargeId })
  return receipt
})
